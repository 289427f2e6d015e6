"""The display board's HTTP edge: the TV page, its JSON snapshot and its event stream. No login: a
board shows ticket numbers and counters only, never anything about a person."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

from mpp.contracts.masterdata import Catalogue
from mpp.kit.http import DomainError
from mpp.kit.kafka import KafkaSecurity
from mpp.kit.runtime import ServiceRuntime
from mpp.queue.board.feed import BoardHub, UnknownSite
from mpp.queue.board.page import render_page
from mpp.queue.board.sse import board_stream
from mpp.queue.board.state import BoardState, CounterLabel

router = APIRouter(prefix="/board", tags=["board"])

SiteCode = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
AgencyParam = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64, description="One agency's zone."),
]
AgencyPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=64)]
_CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


class BoardSiteNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Papan antrean tidak ditemukan: lokasi MPP tidak dikenal"


class BoardAgencyNotFound(DomainError):
    status_code = 404
    code = "not_found"
    message = "Papan antrean tidak ditemukan: instansi tidak dikenal di lokasi ini"


@dataclass(frozen=True)
class BoardDirectory:
    """Names shown on the boards, from the site's catalogue."""

    site_names: dict[str, str]
    agency_names: dict[str, str]
    site_agencies: dict[str, set[str]]
    timezones: dict[str, str]


def _hub(request: Request) -> BoardHub:
    hub: BoardHub = request.app.state.board
    return hub


def _directory(request: Request) -> BoardDirectory:
    directory: BoardDirectory = request.app.state.board_directory
    return directory


async def _board(request: Request, site: str, agency: str | None) -> BoardState:
    try:
        board = await _hub(request).board(site)
    except UnknownSite:
        raise BoardSiteNotFound() from None
    directory = _directory(request)
    if agency is not None and agency not in directory.site_agencies.get(site, set()):
        raise BoardAgencyNotFound(details={"agency": agency})
    return board


@router.get("/{site}/state", summary="The board now: recent calls and counters (JSON)")
async def board_state(request: Request, site: SiteCode, agency: AgencyParam = None) -> JSONResponse:
    board = await _board(request, site, agency)
    return JSONResponse(board.snapshot(agency, _hub(request).clock()), headers={"Cache-Control": "no-store"})


@router.get(
    "/{site}/events",
    summary="Live board updates (Server-Sent Events: snapshot, call, counter, heartbeat)",
    response_class=StreamingResponse,
)
async def board_events(
    request: Request,
    site: SiteCode,
    agency: AgencyParam = None,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> StreamingResponse:
    board = await _board(request, site, agency)
    hub = _hub(request)
    queue = hub.subscribe(site)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in board_stream(
                board,
                queue,
                agency=agency,
                last_event_id=last_event_id,
                heartbeat_s=hub.heartbeat_s,
                now=hub.clock,
            ):
                yield chunk
        finally:
            hub.unsubscribe(site, queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _page(request: Request, site: str, agency: str | None, speak: bool) -> HTMLResponse:
    directory = _directory(request)
    site_name = directory.site_names.get(site, site)
    if agency is None:
        title, subtitle = site_name, "Semua layanan"
    else:
        title, subtitle = directory.agency_names.get(agency, agency), site_name
    config: dict[str, Any] = {
        "site": site,
        "agency": agency,
        "base": f"/board/{site}",
        "timezone": directory.timezones.get(site, "Asia/Jakarta"),
        "speak": speak,
        "heartbeat_ms": int(_hub(request).heartbeat_s * 1000),
    }
    return HTMLResponse(
        render_page(title=title, subtitle=subtitle, config=config),
        headers={"Cache-Control": "no-store", "Content-Security-Policy": _CSP},
    )


Speak = Annotated[
    bool, Query(alias="suara", description="Read each call out (speechSynthesis) on this screen.")
]


@router.get("/{site}", summary="The site's display board (HTML for a TV)", response_class=HTMLResponse)
async def board_page(
    request: Request, site: SiteCode, agency: AgencyParam = None, speak: Speak = False
) -> HTMLResponse:
    await _board(request, site, agency)
    return _page(request, site, agency, speak)


@router.get(
    "/{site}/{agency}", summary="One agency's zone board (HTML for a TV)", response_class=HTMLResponse
)
async def zone_page(
    request: Request, site: SiteCode, agency: AgencyPath, speak: Speak = False
) -> HTMLResponse:
    await _board(request, site, agency)
    return _page(request, site, agency, speak)


def install_board(app: FastAPI, runtime: ServiceRuntime, catalogue: Catalogue) -> BoardHub:
    """Add the board's routes, and start and stop its feed with the service."""
    settings = runtime.settings
    sites = {s.code: s for s in catalogue.sites}
    default = catalogue.sites[0]
    codes = [*sites, *([settings.site] if settings.site not in sites else [])]
    timezones = {code: sites.get(code, default).timezone.value for code in codes}
    zones: dict[str, tzinfo] = {code: ZoneInfo(name) for code, name in timezones.items()}
    labels: dict[str, dict[str, CounterLabel]] = {}
    site_agencies: dict[str, set[str]] = {code: set() for code in codes}
    for c in catalogue.counters:
        if c.site in site_agencies:
            labels.setdefault(c.site, {})[c.code] = CounterLabel(code=c.code, name=c.name, agency=c.agency)
            site_agencies[c.site].add(c.agency)
    # A site the catalogue does not list (a demo or test site) has the first site's counters.
    for code in codes:
        if code not in sites:
            labels[code] = dict(labels.get(default.code, {}))
            site_agencies[code] = set(site_agencies.get(default.code, set()))
    hub = BoardHub(
        sessions=runtime.sessions,
        sites=zones,
        labels=labels,
        bootstrap=settings.kafka_bootstrap_servers if settings.consumer_enabled else None,
        security=KafkaSecurity.from_settings(settings),
        # The queue's own clock (tests step it), so "today" on the board is the day of the tickets.
        clock=lambda: app.state.queue.ports.clock.now(),  # noqa: PLW0108 (read when called)
    )
    app.state.board = hub
    app.state.board_directory = BoardDirectory(
        site_names={code: sites[code].name if code in sites else code for code in codes},
        agency_names={a.code: a.name for a in catalogue.agencies},
        site_agencies=site_agencies,
        timezones=timezones,
    )
    app.include_router(router)
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            await hub.start(settings.site)
            try:
                yield state
            finally:
                await hub.stop()

    app.router.lifespan_context = lifespan
    return hub
