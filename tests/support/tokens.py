"""Bearer headers for tests: valid ones, and every kind of credential a service must answer with 401.

The bad credentials are built from the claims of a caller who would otherwise be allowed, so that the
defect of the credential is the only reason for the refusal.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from mpp.kit.auth import Role, issue_token

__all__ = ["BAD_CREDENTIAL_KINDS", "Claims", "Headers", "authorization", "bad_credentials"]

Headers = dict[str, str]

OTHER_SECRET = "another-secret-0123456789abcdefghij"


def authorization(value: str) -> Headers:
    return {"Authorization": value}


@dataclass(frozen=True)
class Claims:
    """Who the token speaks for, and how it is signed."""

    secret: str
    subject: str
    roles: Sequence[Role] = field(default_factory=tuple)
    agency: str | None = None
    site: str | None = None

    def token(self, **overrides: Any) -> str:
        secret = overrides.pop("secret", self.secret)
        values: dict[str, Any] = {
            "subject": self.subject,
            "roles": list(self.roles),
            "agency": self.agency,
            "site": self.site,
        }
        return issue_token(secret, **(values | overrides))

    def bearer(self, **overrides: Any) -> Headers:
        return authorization("Bearer " + self.token(**overrides))

    def unsigned(self) -> str:
        """The same claims with ``alg: none``: a token anyone can forge."""
        claims: dict[str, Any] = {"sub": self.subject, "roles": [str(role) for role in self.roles]}
        claims |= {k: v for k, v in {"agency": self.agency, "site": self.site}.items() if v is not None}
        claims |= {"iss": "mpp-dev", "aud": "mpp", "exp": int(time.time()) + 3600}
        return jwt.encode(claims, "", algorithm="none")

    def without(self, claim: str) -> str:
        """The same claims, correctly signed, with one required claim removed."""
        decoded: dict[str, Any] = jwt.decode(self.token(), options={"verify_signature": False})
        decoded.pop(claim)
        return jwt.encode(decoded, self.secret, algorithm="HS256")


_KINDS: dict[str, Callable[[Claims], Headers]] = {
    "missing": lambda c: {},
    "empty bearer": lambda c: authorization("Bearer "),
    "basic scheme": lambda c: authorization(
        "Basic " + base64.b64encode(f"{c.subject}:secret".encode()).decode()
    ),
    "token without a scheme": lambda c: authorization(c.token()),
    "malformed token": lambda c: authorization("Bearer not-a.jwt.at-all"),
    "truncated token": lambda c: authorization("Bearer " + c.token()[:-12]),
    "expired": lambda c: c.bearer(ttl_seconds=-3600),
    "wrongly signed": lambda c: c.bearer(secret=OTHER_SECRET),
    "unsigned": lambda c: authorization("Bearer " + c.unsigned()),
    "wrong audience": lambda c: c.bearer(audience="another-audience"),
    "wrong issuer": lambda c: c.bearer(issuer="someone-else"),
    "without a subject": lambda c: authorization("Bearer " + c.without("sub")),
    "without an expiry": lambda c: authorization("Bearer " + c.without("exp")),
}

BAD_CREDENTIAL_KINDS: tuple[str, ...] = tuple(_KINDS)


def bad_credentials(claims: Claims) -> dict[str, Callable[[], Headers]]:
    """Every kind of bad credential, by name, for the caller ``claims`` describes (built at call time,
    so expiry is relative to the request)."""

    def build(kind: Callable[[Claims], Headers]) -> Callable[[], Headers]:
        return lambda: kind(claims)

    return {name: build(kind) for name, kind in _KINDS.items()}
