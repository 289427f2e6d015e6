"""Composition root: ``create_app(settings)`` wires database, Kafka runtime, routes and telemetry."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from mpp.contracts.masterdata import Catalogue, load_catalogue, load_demo_catalogue
from mpp.kit.runtime import ServiceRuntime, build_runtime, service_app
from mpp.licensing.api.http import public, router
from mpp.licensing.config import LicensingSettings
from mpp.licensing.handlers import Ports
from mpp.licensing.persistence.tables import consumer_offsets, inbox, outbox
from mpp.licensing.persistence.uow import LicensingUnitOfWork

MIGRATIONS = Path(__file__).resolve().parents[3] / "migrations"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class LicensingServiceInfo:
    code: str
    agency: str
    short_code: str


class CatalogueAdapter:
    """Looks up licensing service types in the site's catalogue; other service types are unknown here."""

    def __init__(self, catalogue: Catalogue) -> None:
        self._by_code: dict[str, LicensingServiceInfo] = {}
        for st in catalogue.service_types:
            if not st.licensing:
                continue
            self._by_code[st.code] = LicensingServiceInfo(
                code=st.code, agency=st.agency, short_code=st.code.rsplit(".", 1)[-1].replace("-", "")[:12]
            )

    def licensing_service(self, code: str) -> LicensingServiceInfo | None:
        return self._by_code.get(code)


class KeyedPseudonymiser:
    """HMAC-SHA256 of the NIK under a secret key: stable per citizen, meaningless without the key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def citizen_ref(self, nik: str) -> str:
        return "c_" + hmac.new(self._key, nik.encode(), hashlib.sha256).hexdigest()[:32]


class LicensingService:
    """What the HTTP edge needs: a unit-of-work factory and the ports."""

    def __init__(self, runtime: ServiceRuntime, ports: Ports) -> None:
        self.runtime = runtime
        self.ports = ports

    def uow(self) -> LicensingUnitOfWork:
        return LicensingUnitOfWork(self.runtime.sessions, self.runtime.relay_wakeup)


def create_app(settings: LicensingSettings | None = None) -> FastAPI:
    settings = settings or LicensingSettings()
    runtime = build_runtime(
        settings, outbox=outbox, inbox=inbox, offsets=consumer_offsets, migrations=MIGRATIONS
    )
    catalogue = (
        load_catalogue(settings.catalogue_file.read_text())
        if settings.catalogue_file
        else load_demo_catalogue()
    )
    ports = Ports(
        clock=SystemClock(),
        catalogue=CatalogueAdapter(catalogue),
        pseudonymiser=KeyedPseudonymiser(settings.citizen_ref_key.get_secret_value().encode()),
    )
    app = service_app(runtime, title="MPP Licensing", version="0.1.0")
    app.state.licensing = LicensingService(runtime, ports)
    app.include_router(router)
    app.include_router(public)
    return app
