"""The counters' cycle (call-next, start, complete, recall, no-show) answered without FastAPI's routing.

A counter loops call-next -> start -> complete all day, and for these requests FastAPI's route matching,
dependency solving and its middleware layers cost more CPU than the work itself. This pure ASGI layer
sits inside the kit's edge middleware (correlation id, span, metrics, body limit and the 500/503 fallback
stay the edge's) and in front of FastAPI's router. It recognises exactly these method and path shapes and
calls the same functions the FastAPI endpoints call (:mod:`mpp.queue.api.http`), with the same token and
role checks, and answers with the same status, headers and bytes. Anything else, or anything it is not
sure about (a query string, a mount prefix, a counter code FastAPI would reject, a body on complete),
goes to FastAPI unchanged; the FastAPI routes stay as they are and keep the OpenAPI document.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from fastapi.routing import APIRoute
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mpp.kit.auth import AuthError, ForbiddenError, Principal, ensure_roles, principal_from_authorization
from mpp.kit.http import DomainError, FastJSONResponse, error_response
from mpp.queue.api.http import OFFICER_ROLES, act_answer, call_next_answer, complete_answer

__all__ = ["CALL_NEXT_PATH", "TICKET_ACTION_PATHS", "CounterCycleRoutes"]

CALL_NEXT_PATH: Final = "/v1/counters/{code}/call-next"
TICKET_ACTION_PATHS: Final = {
    "start": "/v1/tickets/{ticket_id}/start",
    "complete": "/v1/tickets/{ticket_id}/complete",
    "recall": "/v1/tickets/{ticket_id}/recall",
    "no-show": "/v1/tickets/{ticket_id}/no-show",
}
_ACTIONS: Final = {"start": "start", "recall": "recall", "no-show": "no_show"}

# A counter code as the route's ``Code`` constraint accepts it (a code it would refuse goes to FastAPI,
# which answers the 422); a ticket id as the router's ``{ticket_id}`` matches it (any text without "/").
_CALL_NEXT_RE: Final = re.compile(r"/v1/counters/([A-Za-z0-9][A-Za-z0-9._-]{0,63})/call-next")
_TICKET_ACTION_RE: Final = re.compile(r"/v1/tickets/([^/]+)/(start|complete|recall|no-show)")
_OFFICERS: Final = frozenset(OFFICER_ROLES)

Answer = Callable[[Any, Principal], Awaitable[dict[str, Any]]]


class CounterCycleRoutes:
    """Pure ASGI: serves the counters' cycle itself and passes every other request to ``app``."""

    def __init__(self, app: ASGIApp, *, routes: Iterable[BaseRoute]) -> None:
        self.app = app
        by_path = {
            route.path: route
            for route in routes
            if isinstance(route, APIRoute) and route.methods is not None and "POST" in route.methods
        }
        # The route objects FastAPI itself puts in the scope: the edge labels metrics and spans by them.
        self._call_next_route = by_path[CALL_NEXT_PATH]
        self._action_routes = {action: by_path[path] for action, path in TICKET_ACTION_PATHS.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            await self.fall_through(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/v1/counters/"):
            matched = _CALL_NEXT_RE.fullmatch(path)
            if matched is None:
                await self.fall_through(scope, receive, send)
                return
            code = matched.group(1)
            scope["route"] = self._call_next_route
            await self._answer(scope, receive, send, lambda svc, who: call_next_answer(svc, who, code))
            return
        if path.startswith("/v1/tickets/"):
            matched = _TICKET_ACTION_RE.fullmatch(path)
            if matched is None:
                await self.fall_through(scope, receive, send)
                return
            ticket_id, action = matched.groups()
            if action == "complete":
                # FastAPI reads complete's optional body before anything else; an empty one is no body.
                # A body (or a disconnect) goes to FastAPI, which validates it, with what was read so far.
                received = await _read_empty_body(receive)
                if received is not None:
                    await self.fall_through(scope, _replaying(received, receive), send)
                    return
                scope["route"] = self._action_routes[action]
                await self._answer(
                    scope, receive, send, lambda svc, who: complete_answer(svc, who, ticket_id, None)
                )
                return
            verb = _ACTIONS[action]
            scope["route"] = self._action_routes[action]
            await self._answer(scope, receive, send, lambda svc, who: act_answer(svc, who, ticket_id, verb))
            return
        await self.fall_through(scope, receive, send)

    async def fall_through(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, answer: Answer) -> None:
        state = scope["app"].state
        try:
            principal = ensure_roles(
                principal_from_authorization(state.token_verifier, _authorization(scope)), _OFFICERS
            )
            body = await answer(state.queue, principal)
        except (AuthError, ForbiddenError, DomainError) as exc:
            # The same answer as the application's exception handlers give; anything else is the edge's.
            await error_response(exc)(scope, receive, send)
            return
        await FastJSONResponse(body)(scope, receive, send)


def _authorization(scope: Scope) -> str | None:
    """The first ``Authorization`` header, as Starlette's ``Request.headers`` reads it."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            return text
    return None


async def _read_empty_body(receive: Receive) -> list[Message] | None:
    """Read the request body; None when it is empty, else the messages read (to hand on to FastAPI)."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or message.get("body"):
            return messages
        if not message.get("more_body", False):
            return None


def _replaying(messages: list[Message], receive: Receive) -> Receive:
    pending = deque(messages)

    async def replay() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replay
