"""Who is looking at a dashboard page.

Browsers cannot add an ``Authorization`` header to a link, so the pages accept the same bearer token
either in that header (scripts, tests) or in an HttpOnly, SameSite=Strict cookie set by the sign-in
form at ``/dasbor/masuk``. A page requested without valid credentials redirects to that form and
comes back afterwards; the JSON API keeps answering 401/403 as before.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mpp.kit.auth import AuthError, ForbiddenError, Principal, Role, TokenVerifier, bearer_principal

COOKIE = "mpp_dasbor"
LOGIN_PATH = "/dasbor/masuk"
LOGOUT_PATH = "/dasbor/keluar"
HOME_PATH = "/dasbor"
_MAX_AGE_SECONDS = 8 * 3600
_MAX_FORM_BYTES = 16 * 1024

router = APIRouter()


class LoginRequired(Exception):
    """A page was asked for without usable credentials; answered with a redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path
        super().__init__(next_path)


class PageForbidden(ForbiddenError):
    """A page the caller may not see: answered as an HTML page in Bahasa Indonesia (the JSON API keeps
    its JSON 403)."""

    default_message = "Anda tidak berwenang membuka halaman ini"


def _safe_next(value: str | None) -> str:
    """Only a path on this service: never an absolute or scheme-relative address (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return HOME_PATH
    return value


def _requested(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def page_principal(request: Request) -> Principal:
    """The caller of a page: the Authorization header if present, else the sign-in cookie."""
    if request.headers.get("authorization"):
        return await bearer_principal(request)
    token = request.cookies.get(COOKIE)
    verifier = getattr(request.app.state, "token_verifier", None)
    if not token or not isinstance(verifier, TokenVerifier):
        raise LoginRequired(_requested(request))
    try:
        principal = verifier.verify(token)
    except AuthError:
        raise LoginRequired(_requested(request)) from None
    request.state.principal = principal
    return principal


def require_page_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """Page dependency: the caller, if it holds one of ``roles`` (else 403)."""
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(page_principal)]) -> Principal:
        if principal.roles.isdisjoint(allowed):
            raise PageForbidden
        return principal

    return dependency


async def login_redirect(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(exc.next_path, safe='/')}", status_code=303)


def _login_page(next_path: str, error: str | None = None) -> str:
    message = f'<p class="galat" role="alert">{html.escape(error)}</p>' if error else ""
    return f"""<!doctype html>
<html lang="id"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Masuk - Dasbor MPP</title>
<style>
body{{font-family:system-ui,sans-serif;background:#f4f6f8;margin:0;display:grid;place-items:center;min-height:100vh}}
form{{background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px #0002;width:min(32rem,90vw)}}
label{{display:block;margin-bottom:.5rem;font-weight:600}}
textarea{{width:100%;box-sizing:border-box;height:8rem;font-family:monospace}}
button{{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem}}
.galat{{color:#a00}}
</style></head><body>
<form method="post" action="{LOGIN_PATH}">
<h1>Dasbor MPP</h1>
<p>Tempelkan token akses yang diberikan pengelola platform.</p>
{message}
<label for="token">Token akses</label>
<textarea id="token" name="token" required autocomplete="off"></textarea>
<input type="hidden" name="next" value="{html.escape(next_path)}">
<button type="submit">Masuk</button>
</form></body></html>"""


@router.get(LOGIN_PATH, response_class=HTMLResponse, include_in_schema=False)
async def login_form(next: str | None = None) -> HTMLResponse:
    return HTMLResponse(_login_page(_safe_next(next)))


@router.post(LOGIN_PATH, include_in_schema=False)
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return HTMLResponse(_login_page(HOME_PATH, "Isian terlalu panjang"), status_code=413)
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    except ValueError:
        fields = {}
    token = (fields.get("token") or [""])[0].strip()
    target = _safe_next((fields.get("next") or [""])[0])
    if not token:
        return HTMLResponse(_login_page(target, "Token akses wajib diisi"), status_code=422)
    verifier = getattr(request.app.state, "token_verifier", None)
    try:
        if not isinstance(verifier, TokenVerifier):
            raise AuthError
        verifier.verify(token)
    except AuthError:
        return HTMLResponse(_login_page(target, "Token tidak valid atau sudah kedaluwarsa"), status_code=401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(LOGOUT_PATH, include_in_schema=False)
async def logout() -> Response:
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
