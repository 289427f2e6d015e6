"""Run a service's ASGI app with uvicorn (uvloop when available); SIGTERM shuts down gracefully."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from mpp.kit.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        loop="auto",
        timeout_graceful_shutdown=10,
        # Longer than the idle timeout of load balancers and client pools, so the server never closes a
        # keep-alive connection a client is about to reuse.
        timeout_keep_alive=75,
    )
