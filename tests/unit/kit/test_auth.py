import base64
import hashlib
import hmac
import json
import logging
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from mpp.kit.auth import (
    AuthError,
    ForbiddenError,
    Principal,
    Role,
    TokenVerifier,
    ensure_roles,
    issue_token,
    main,
    principal_from_authorization,
)
from mpp.kit.settings import ServiceSettings

pytestmark = pytest.mark.unit

SECRET = "development-secret-of-at-least-32-bytes"
OTHER_SECRET = "another-secret-that-is-also-long-enough"


def _settings(**overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {"jwt_hs256_secret": SECRET, "jwt_issuer": "mpp-dev", "jwt_audience": "mpp"}
    values.update(overrides)
    return ServiceSettings(**values)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "officer-1",
        "roles": ["officer"],
        "agency": "dpmptsp",
        "site": "mpp-demo",
        "iss": "mpp-dev",
        "aud": "mpp",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forge_hs256(claims: dict[str, Any], key: bytes, kid: str) -> str:
    """An HS256 token keyed with arbitrary bytes (PyJWT itself refuses public keys as HMAC secrets)."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(_settings())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey) -> Path:
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    keys = [
        {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
        {**ec_jwk, "kid": "ec-1", "use": "sig"},
        {"kty": "oct", "kid": "hmac-1", "k": _b64({"not": "allowed"})},
    ]
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": keys}), encoding="utf-8")
    return path


class TestVerifyHs256Token:
    def test_valid_token_gives_the_principal(self, verifier: TokenVerifier) -> None:
        token = issue_token(
            SECRET, subject="officer-1", roles=[Role.OFFICER], agency="dpmptsp", site="mpp-demo"
        )

        principal = verifier.verify(token)

        assert principal == Principal(
            subject="officer-1", agency="dpmptsp", site="mpp-demo", roles=frozenset({Role.OFFICER})
        )

    def test_malformed_token_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(AuthError):
            verifier.verify("not-a-jwt")

    def test_expired_token_is_refused(self, verifier: TokenVerifier) -> None:
        token = jwt.encode(_claims(exp=int(time.time()) - 120), SECRET, algorithm="HS256")

        with pytest.raises(AuthError, match="kedaluwarsa"):
            verifier.verify(token)

    def test_token_expired_within_leeway_is_accepted(self, verifier: TokenVerifier) -> None:
        token = jwt.encode(_claims(exp=int(time.time()) - 10), SECRET, algorithm="HS256")

        assert verifier.verify(token).subject == "officer-1"

    def test_token_without_exp_is_refused(self, verifier: TokenVerifier) -> None:
        claims = _claims()
        del claims["exp"]

        with pytest.raises(AuthError):
            verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))

    def test_wrong_signature_is_refused(self, verifier: TokenVerifier) -> None:
        token = jwt.encode(_claims(), OTHER_SECRET, algorithm="HS256")

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_wrong_issuer_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(AuthError):
            verifier.verify(jwt.encode(_claims(iss="someone-else"), SECRET, algorithm="HS256"))

    def test_wrong_audience_is_refused(self, verifier: TokenVerifier) -> None:
        with pytest.raises(AuthError):
            verifier.verify(jwt.encode(_claims(aud="another-api"), SECRET, algorithm="HS256"))

    def test_alg_none_is_refused(self, verifier: TokenVerifier) -> None:
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_unknown_roles_are_ignored(self, verifier: TokenVerifier) -> None:
        token = jwt.encode(_claims(roles=["officer", "superuser", "root"]), SECRET, algorithm="HS256")

        assert verifier.verify(token).roles == frozenset({Role.OFFICER})

    def test_roles_that_are_not_a_list_are_refused(self, verifier: TokenVerifier) -> None:
        token = jwt.encode(_claims(roles="ministry"), SECRET, algorithm="HS256")

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_token_without_subject_is_refused(self, verifier: TokenVerifier) -> None:
        claims = _claims()
        del claims["sub"]

        with pytest.raises(AuthError):
            verifier.verify(jwt.encode(claims, SECRET, algorithm="HS256"))


class TestVerifyJwksToken:
    def test_rs256_token_with_known_kid_is_accepted(
        self, jwks_file: Path, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None, jwt_jwks_file=jwks_file))
        token = jwt.encode(_claims(roles=["ministry"]), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})

        assert verifier.verify(token).roles == frozenset({Role.MINISTRY})

    def test_es256_token_with_known_kid_is_accepted(
        self, jwks_file: Path, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None, jwt_jwks_file=jwks_file))
        token = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})

        assert verifier.verify(token).subject == "officer-1"

    def test_unknown_kid_is_refused(self, jwks_file: Path, rsa_key: rsa.RSAPrivateKey) -> None:
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None, jwt_jwks_file=jwks_file))
        token = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-unknown"})

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_alg_that_does_not_match_the_kid_is_refused(
        self, jwks_file: Path, ec_key: ec.EllipticCurvePrivateKey
    ) -> None:
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None, jwt_jwks_file=jwks_file))
        token = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_hs256_token_is_refused_when_only_jwks_is_configured(self, jwks_file: Path) -> None:
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None, jwt_jwks_file=jwks_file))
        token = jwt.encode(_claims(), SECRET, algorithm="HS256", headers={"kid": "hmac-1"})

        with pytest.raises(AuthError):
            verifier.verify(token)

    def test_hs256_token_signed_with_the_public_key_is_refused(
        self, jwks_file: Path, rsa_key: rsa.RSAPrivateKey
    ) -> None:
        verifier = TokenVerifier(_settings(jwt_jwks_file=jwks_file))
        public_pem = rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        token = _forge_hs256(_claims(), public_pem, kid="rsa-1")

        with pytest.raises(AuthError):
            verifier.verify(token)


class TestVerifiedTokenCache:
    def test_a_cached_token_is_checked_again_once_it_expires(
        self, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        checked: list[str] = []
        check = verifier._verify

        def counting(token: str) -> tuple[Principal, float]:
            checked.append(token)
            return check(token)

        monkeypatch.setattr(verifier, "_verify", counting)
        now = time.time()
        token = jwt.encode(_claims(exp=int(now) + 60), SECRET, algorithm="HS256")
        verifier.verify(token)
        verifier.verify(token)
        assert len(checked) == 1

        # Past its expiry and the leeway the cached answer is not used: the signature and claims are
        # checked again (and refused by a clock that agrees).
        monkeypatch.setattr(time, "time", lambda: now + 60 + 31)
        verifier.verify(token)
        assert len(checked) == 2

    def test_a_full_cache_forgets_only_its_oldest_token(
        self, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        checked: list[str] = []
        check = verifier._verify

        def counting(token: str) -> tuple[Principal, float]:
            checked.append(token)
            return check(token)

        monkeypatch.setattr(verifier, "_verify", counting)
        monkeypatch.setattr("mpp.kit.auth.TOKEN_CACHE_SIZE", 2)
        first, second, third = (
            jwt.encode(_claims(sub=f"s-{n}"), SECRET, algorithm="HS256") for n in range(3)
        )
        for token in (first, second, third, second, third):
            verifier.verify(token)

        assert checked == [first, second, third]
        verifier.verify(first)
        assert checked == [first, second, third, first]


class TestAuthorizationHeader:
    def test_a_bearer_token_gives_its_principal(self, verifier: TokenVerifier) -> None:
        token = issue_token(SECRET, subject="officer-1", roles=[Role.OFFICER], agency="dpmptsp")

        principal = principal_from_authorization(verifier, f"Bearer {token}")

        assert principal.subject == "officer-1"
        assert principal.agency == "dpmptsp"

    def test_no_header_asks_for_a_token(self, verifier: TokenVerifier) -> None:
        with pytest.raises(AuthError, match="Token akses diperlukan"):
            principal_from_authorization(verifier, None)

    @pytest.mark.parametrize("header", ["Basic b2ZmaWNlcg==", "Bearer", "Bearer   ", "token-only"])
    def test_another_scheme_or_an_empty_token_is_refused(self, verifier: TokenVerifier, header: str) -> None:
        with pytest.raises(AuthError, match="Token tidak valid"):
            principal_from_authorization(verifier, header)

    def test_without_a_verifier_every_header_is_refused(self) -> None:
        token = issue_token(SECRET, subject="officer-1", roles=[Role.OFFICER])

        with pytest.raises(AuthError):
            principal_from_authorization(None, f"Bearer {token}")

    def test_roles_are_checked_against_the_allowed_ones(self) -> None:
        officer = Principal(subject="s", agency="dpmptsp", site="mpp-demo", roles=frozenset({Role.OFFICER}))

        assert ensure_roles(officer, frozenset({Role.OFFICER, Role.SUPERVISOR})) is officer
        with pytest.raises(ForbiddenError):
            ensure_roles(officer, frozenset({Role.OPERATOR}))


class TestUnconfiguredVerifier:
    def test_every_token_is_refused_with_a_log_line(self, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="mpp.kit.auth")
        verifier = TokenVerifier(_settings(jwt_hs256_secret=None))

        with pytest.raises(AuthError):
            verifier.verify(issue_token(SECRET, subject="officer-1", roles=["officer"]))

        messages = [record.getMessage() for record in caplog.records]
        assert "auth.verifier.unconfigured" in messages
        assert "auth.token.rejected" in messages


ALLOWED_SCOPES = [
    # roles, own agency, own site, requested agency, requested site
    ({Role.MINISTRY}, None, None, "dpmptsp", "mpp-demo"),
    ({Role.MINISTRY}, None, None, None, None),
    ({Role.OPERATOR}, None, "mpp-demo", "dpmptsp", "mpp-demo"),
    ({Role.OPERATOR}, None, "mpp-demo", "disdukcapil", "mpp-demo"),
    ({Role.SUPERVISOR}, "dpmptsp", "mpp-demo", "dpmptsp", "mpp-demo"),
    ({Role.OFFICER}, "dpmptsp", "mpp-demo", "dpmptsp", "mpp-demo"),
    ({Role.CITIZEN, Role.OFFICER}, "dpmptsp", "mpp-demo", "dpmptsp", "mpp-demo"),
]
FORBIDDEN_SCOPES = [
    ({Role.OPERATOR}, None, "mpp-demo", "dpmptsp", "mpp-lain"),
    ({Role.OPERATOR}, None, "mpp-demo", None, None),
    ({Role.SUPERVISOR}, "dpmptsp", "mpp-demo", "disdukcapil", "mpp-demo"),
    ({Role.SUPERVISOR}, "dpmptsp", "mpp-demo", "dpmptsp", "mpp-lain"),
    ({Role.OFFICER}, "dpmptsp", "mpp-demo", "disdukcapil", "mpp-demo"),
    ({Role.OFFICER}, "dpmptsp", "mpp-demo", None, "mpp-demo"),
    ({Role.OFFICER}, None, None, None, None),
    ({Role.CITIZEN}, "dpmptsp", "mpp-demo", "dpmptsp", "mpp-demo"),
    ({Role.CITIZEN}, None, None, None, None),
    ({Role.KIOSK}, None, "mpp-demo", "dpmptsp", "mpp-demo"),
    ({Role.KIOSK}, None, "mpp-demo", None, "mpp-demo"),
    (set(), "dpmptsp", "mpp-demo", "dpmptsp", "mpp-demo"),
]
SCOPE_PARAMS = ("roles", "agency", "site", "wanted_agency", "wanted_site")


class TestEnsureScope:
    @pytest.mark.parametrize(SCOPE_PARAMS, ALLOWED_SCOPES)
    def test_allowed(
        self,
        roles: set[Role],
        agency: str | None,
        site: str | None,
        wanted_agency: str | None,
        wanted_site: str | None,
    ) -> None:
        principal = Principal(subject="s", agency=agency, site=site, roles=frozenset(roles))

        principal.ensure_scope(wanted_agency, wanted_site)

    @pytest.mark.parametrize(SCOPE_PARAMS, FORBIDDEN_SCOPES)
    def test_forbidden(
        self,
        roles: set[Role],
        agency: str | None,
        site: str | None,
        wanted_agency: str | None,
        wanted_site: str | None,
    ) -> None:
        principal = Principal(subject="s", agency=agency, site=site, roles=frozenset(roles))

        with pytest.raises(ForbiddenError, match="tidak berwenang"):
            principal.ensure_scope(wanted_agency, wanted_site)

    def test_has_any(self) -> None:
        principal = Principal(subject="s", agency=None, site=None, roles=frozenset({Role.SUPERVISOR}))

        assert principal.has_any(Role.OFFICER, Role.SUPERVISOR)
        assert not principal.has_any(Role.MINISTRY)


class TestIssueCommand:
    def test_prints_a_token_signed_with_the_configured_secret(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("MPP_JWT_HS256_SECRET", SECRET)
        argv = ["issue", "--subject", "officer-1", "--roles", "officer,supervisor", "--agency", "dpmptsp"]

        assert main([*argv, "--site", "mpp-demo", "--ttl", "60"]) == 0

        principal = TokenVerifier(_settings()).verify(capsys.readouterr().out.strip())
        assert principal.roles == frozenset({Role.OFFICER, Role.SUPERVISOR})
        assert (principal.agency, principal.site) == ("dpmptsp", "mpp-demo")

    def test_prints_a_kiosk_token_bound_to_its_site(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("MPP_JWT_HS256_SECRET", SECRET)

        assert main(["issue", "--subject", "kiosk-1", "--roles", "kiosk", "--site", "mpp-demo"]) == 0

        principal = TokenVerifier(_settings()).verify(capsys.readouterr().out.strip())
        assert principal.roles == frozenset({Role.KIOSK})
        assert (principal.agency, principal.site) == (None, "mpp-demo")

    @pytest.mark.parametrize(
        "extra",
        [
            [],
            ["--site", "mpp-demo", "--agency", "dpmptsp"],
            ["--site", "mpp-demo", "--roles", "kiosk,officer"],
        ],
        ids=["no site", "an agency", "another role"],
    )
    def test_refuses_a_kiosk_token_that_is_not_a_device_of_one_site(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], extra: list[str]
    ) -> None:
        monkeypatch.setenv("MPP_JWT_HS256_SECRET", SECRET)

        assert main(["issue", "--subject", "kiosk-1", "--roles", "kiosk", *extra]) == 2
        assert "kiosk" in capsys.readouterr().err

    def test_fails_without_a_secret(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("MPP_JWT_HS256_SECRET", raising=False)

        assert main(["issue", "--subject", "officer-1", "--roles", "officer"]) == 2
        assert "MPP_JWT_HS256_SECRET" in capsys.readouterr().err
