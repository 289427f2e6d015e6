"""Run a service's ASGI app with uvicorn (uvloop when available); SIGTERM shuts down gracefully."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from mpp.kit.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


class ConfigurationError(Exception):
    """A setting or a configuration file the service cannot start with; the message names the problem."""


def main(name: str, settings_type: type[S], create_app: Callable[[S], FastAPI]) -> None:
    """Entry point of ``python -m mpp.<service>``: reads the settings, builds the app and serves it.

    A bad setting or configuration file (an invalid catalogue or workflow, say) stops the service at
    startup with exit code 2 and one message naming the problem, instead of a traceback.
    """
    try:
        settings = settings_type()
        app = create_app(settings)
    except (
        ValidationError,
        ConfigurationError,
        FileNotFoundError,
        IsADirectoryError,
        PermissionError,
    ) as exc:
        # A configuration file that is missing or unreadable is a configuration problem too.
        print(f"{name}: refusing to start: invalid configuration\n{_describe(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(app, settings)


def _describe(exc: Exception) -> str:
    if not isinstance(exc, ValidationError):
        return f"  {exc}"
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or exc.title
        lines.append(f"  {where}: {error['msg']}")
    return "\n".join(lines)


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
