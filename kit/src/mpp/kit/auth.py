"""Bearer-token authentication and role/scope authorization.

Tokens are JWTs: HS256 signed with a shared development secret, or RS256/ES256 signed by the OIDC
provider whose public keys are in a JWKS file. Claims: ``sub``, ``roles`` (list of strings), optional
``agency`` and ``site``, plus ``exp``, ``iss`` and ``aud``.

Development tokens: ``python -m mpp.kit.auth issue --subject officer-1 --roles officer --agency dpmptsp
--site mpp-kota-sukamaju --ttl 3600`` (signed with ``MPP_JWT_HS256_SECRET``). A kiosk (a self-service
device in the hall) holds a ``kiosk`` token bound to its site and to no agency: ``--subject kiosk-lobby-1
--roles kiosk --site mpp-kota-sukamaju``.
"""

import argparse
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final

import jwt
from fastapi import Depends, Request

from mpp.kit.settings import ServiceSettings

__all__ = [
    "AuthError",
    "ForbiddenError",
    "Principal",
    "Role",
    "TokenVerifier",
    "bearer_principal",
    "ensure_roles",
    "issue_token",
    "principal_from_authorization",
    "require_roles",
]

_logger = logging.getLogger(__name__)

LEEWAY_SECONDS: Final = 30
_ASYMMETRIC_ALGORITHMS: Final = frozenset({"RS256", "ES256"})


class Role(StrEnum):
    CITIZEN = "citizen"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    MINISTRY = "ministry"
    KIOSK = "kiosk"
    """A self-service device of one site (no agency): it issues visits and tickets and checks in
    appointments at its own site, and nothing else."""


class AuthError(Exception):
    """The caller is not authenticated (HTTP 401)."""

    status_code: int = 401
    code: str = "unauthenticated"
    default_message: str = "Token tidak valid atau sudah kedaluwarsa"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


class ForbiddenError(Exception):
    """The caller is authenticated but may not do this (HTTP 403). Never says whether a record exists."""

    status_code: int = 403
    code: str = "forbidden"
    default_message: str = "Anda tidak berwenang untuk tindakan ini"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)


_MESSAGE_NO_CREDENTIALS: Final = "Token akses diperlukan"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``subject`` may identify a citizen: never log it."""

    subject: str
    agency: str | None
    site: str | None
    roles: frozenset[Role]

    def has_any(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def ensure_scope(self, agency: str | None, site: str | None) -> None:
        """Allow acting on data of ``agency`` at ``site`` (None meaning all agencies / all sites).

        Ministry: everything. Operator: its own site, any agency. Supervisor and officer: their own
        agency at their own site. Citizen and kiosk: nothing agency-scoped. Raises :class:`ForbiddenError`.
        """
        if Role.MINISTRY in self.roles:
            return
        own_site = self.site is not None and site == self.site
        if Role.OPERATOR in self.roles and own_site:
            return
        own_agency = self.agency is not None and agency == self.agency
        if self.has_any(Role.SUPERVISOR, Role.OFFICER) and own_site and own_agency:
            return
        raise ForbiddenError


def _load_jwks(path: Path) -> dict[str | None, jwt.PyJWK]:
    document = json.loads(path.read_text(encoding="utf-8"))
    keys: dict[str | None, jwt.PyJWK] = {}
    for entry in document.get("keys", []):
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            _logger.warning("auth.jwks.key_skipped", extra={"kid": entry.get("kid"), "kty": entry.get("kty")})
            continue
        if key.algorithm_name not in _ASYMMETRIC_ALGORITHMS:
            _logger.warning("auth.jwks.key_skipped", extra={"kid": key.key_id, "alg": key.algorithm_name})
            continue
        keys[key.key_id] = key
    return keys


class TokenVerifier:
    """Verifies bearer tokens against the keys in the settings; every failure is an :class:`AuthError`."""

    def __init__(self, settings: ServiceSettings) -> None:
        secret = settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else ""
        self._hs256_secret: str | None = secret or None
        self._jwks: dict[str | None, jwt.PyJWK] = (
            _load_jwks(settings.jwt_jwks_file) if settings.jwt_jwks_file is not None else {}
        )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        # Verified tokens, so a client that sends the same token on every request pays for the
        # signature check once; entries are dropped at the token's expiry.
        self._cache: dict[str, tuple[Principal, float]] = {}
        if settings.jwt_jwks_file is not None and not self._jwks:
            _logger.error("auth.jwks.empty", extra={"path": str(settings.jwt_jwks_file)})
        if not self.configured:
            _logger.warning("auth.verifier.unconfigured")

    @property
    def configured(self) -> bool:
        return self._hs256_secret is not None or bool(self._jwks)

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        alg = header.get("alg")
        if alg == "HS256":
            if self._hs256_secret is None:
                raise _Rejected("hs256_not_configured")
            return self._hs256_secret, alg
        if alg in _ASYMMETRIC_ALGORITHMS:
            kid = header.get("kid")
            key = self._jwks.get(kid)
            if key is None and kid is None and len(self._jwks) == 1:
                key = next(iter(self._jwks.values()))
            if key is None:
                raise _Rejected("unknown_kid")
            if key.algorithm_name != alg:
                raise _Rejected("algorithm_mismatch")
            return key.key, alg
        raise _Rejected("algorithm_not_allowed")

    def verify(self, token: str) -> Principal:
        cached = self._cache.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires + LEEWAY_SECONDS:
                return principal
            del self._cache[token]
        principal, expires = self._verify(token)
        if len(self._cache) >= TOKEN_CACHE_SIZE:
            # Drop the entry stored first (dicts keep insertion order), not the whole cache: a full cache
            # then costs one more signature check per new token instead of one per client at once.
            del self._cache[next(iter(self._cache))]
        self._cache[token] = (principal, expires)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        if not self.configured:
            _logger.warning("auth.token.rejected", extra={"reason": "verifier_unconfigured"})
            raise AuthError
        try:
            header = jwt.get_unverified_header(token)
            key, alg = self._key_for(header)
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
            return _principal_from_claims(claims), float(claims["exp"])
        except _Rejected as rejected:
            reason = rejected.reason
        except jwt.ExpiredSignatureError:
            reason = "expired"
        except jwt.PyJWTError as error:
            reason = type(error).__name__
        _logger.info("auth.token.rejected", extra={"reason": reason})
        raise AuthError


TOKEN_CACHE_SIZE = 10_000


class _Rejected(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _principal_from_claims(claims: dict[str, Any]) -> Principal:
    subject = claims.get("sub")
    raw_roles = claims.get("roles")
    agency = claims.get("agency")
    site = claims.get("site")
    if not isinstance(subject, str) or not subject:
        raise _Rejected("invalid_sub")
    if not isinstance(raw_roles, list) or not all(isinstance(role, str) for role in raw_roles):
        raise _Rejected("invalid_roles")
    if not (agency is None or isinstance(agency, str)) or not (site is None or isinstance(site, str)):
        raise _Rejected("invalid_scope")
    known = {role.value for role in Role}
    roles = frozenset(Role(role) for role in raw_roles if role in known)
    return Principal(subject=subject, agency=agency or None, site=site or None, roles=roles)


def issue_token(
    secret: str,
    *,
    subject: str,
    roles: Iterable[Role | str],
    agency: str | None = None,
    site: str | None = None,
    ttl_seconds: int = 3600,
    issuer: str = "mpp-dev",
    audience: str = "mpp",
) -> str:
    """Sign a development token with HS256. Production tokens come from the OIDC provider."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": [str(role) for role in roles],
        "iss": issuer,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if agency is not None:
        claims["agency"] = agency
    if site is not None:
        claims["site"] = site
    return jwt.encode(claims, secret, algorithm="HS256")


# --------------------------------------------------------------------------------------------------
# FastAPI integration
# --------------------------------------------------------------------------------------------------


def principal_from_authorization(verifier: object, header: str | None) -> Principal:
    """The caller named by an ``Authorization`` header's value (``Bearer <token>``), or :class:`AuthError`.

    The one reading of the header, shared by the FastAPI dependency and by routes served outside FastAPI.
    """
    if not isinstance(verifier, TokenVerifier):
        _logger.error("auth.verifier.missing")
        raise AuthError
    if not header:
        raise AuthError(_MESSAGE_NO_CREDENTIALS)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthError
    return verifier.verify(token)


def ensure_roles(principal: Principal, allowed: frozenset[Role]) -> Principal:
    """``principal`` if it holds at least one of ``allowed``, else :class:`ForbiddenError`."""
    if principal.roles.isdisjoint(allowed):
        raise ForbiddenError
    return principal


async def bearer_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller of ``Authorization: Bearer <token>``, or :class:`AuthError`."""
    verifier = getattr(request.app.state, "token_verifier", None)
    principal = principal_from_authorization(verifier, request.headers.get("authorization"))
    request.state.principal = principal
    return principal


def require_roles(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    """FastAPI dependency factory: the caller, if it holds at least one of ``roles``."""
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(bearer_principal)]) -> Principal:
        return ensure_roles(principal, allowed)

    return dependency


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpp.kit.auth", description="MPP development tokens.")
    commands = parser.add_subparsers(dest="command", required=True)
    issue = commands.add_parser("issue", help="print an HS256 token signed with MPP_JWT_HS256_SECRET")
    issue.add_argument("--subject", required=True)
    issue.add_argument("--roles", required=True, help="comma-separated: " + ",".join(Role))
    issue.add_argument("--agency")
    issue.add_argument("--site")
    issue.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args(argv)

    settings = ServiceSettings()
    if settings.jwt_hs256_secret is None or not settings.jwt_hs256_secret.get_secret_value():
        print("MPP_JWT_HS256_SECRET is not set", file=sys.stderr)
        return 2
    roles = [role.strip() for role in args.roles.split(",") if role.strip()]
    unknown = sorted(set(roles) - {role.value for role in Role})
    if unknown:
        print(f"unknown roles: {', '.join(unknown)}", file=sys.stderr)
        return 2
    if Role.KIOSK.value in roles and (not args.site or args.agency or len(roles) > 1):
        # A device token: bound to one site, no agency, no other role.
        print("a kiosk token needs --site, no --agency and no other role", file=sys.stderr)
        return 2
    print(
        issue_token(
            settings.jwt_hs256_secret.get_secret_value(),
            subject=args.subject,
            roles=roles,
            agency=args.agency,
            site=args.site,
            ttl_seconds=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
