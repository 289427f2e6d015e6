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
        if settings.http_workers > 1 and not settings.database_url.startswith(("postgresql", "postgres")):
            # Only PostgreSQL elects one outbox relay among processes and locks rows between them.
            raise ConfigurationError("http_workers: more than one worker needs a PostgreSQL database")
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
    if settings.http_workers > 1:
        # Each worker process builds its own app from the environment; the one built above only checked
        # the configuration.
        serve_workers(f"{create_app.__module__}:{create_app.__name__}", settings)
    else:
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


def serve_workers(factory: str, settings: ServiceSettings) -> None:
    """Serve ``settings.http_workers`` processes on one port, each calling the app factory ``factory``
    (``module:function``, called without arguments). Every worker runs the whole service: consumers share
    their groups' partitions, and one outbox relay per database is active at a time (an advisory lock)."""
    uvicorn.run(
        factory,
        factory=True,
        workers=settings.http_workers,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        loop="auto",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=75,
    )
