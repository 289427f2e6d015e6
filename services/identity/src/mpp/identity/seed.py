"""``python -m mpp.identity.seed --count N``: register N synthetic citizens for demos (``make run``).

Citizen number ``n`` is always the same synthetic person (``Warga Uji 0001`` ...), with a generated NIK
and KK number of the site's kabupaten/kota, so running the command again adds only the numbers not yet
registered. Every 50th is recorded as deceased, so demos show refused verifications too. Nothing here is
real data, and the command prints counts only, never a NIK.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy.engine import make_url

from mpp.contracts.events.common import Sex
from mpp.contracts.nik import generate_test_nik
from mpp.identity.app import (
    MIGRATIONS,
    CatalogueAgencies,
    CatalogueCalendar,
    SystemClock,
    catalogue_of,
    citizen_keys,
)
from mpp.identity.config import IdentitySettings
from mpp.identity.domain.citizen import CitizenStatus
from mpp.identity.handlers import AlreadyRegistered, Ports, RegisterCitizen, register_citizen
from mpp.identity.persistence.uow import IdentityUnitOfWork
from mpp.kit.db import create_engine, session_factory
from mpp.kit.migrations import upgrade

SEED_BASE = 20_260_000
SEED_ACTOR = "seed"
DECEASED_EVERY = 50
CHUNK = 500
FALLBACK_KABKOTA = "3298"
# Fixed, so the same number always gives the same person whatever the day the command runs.
GENERATED_ON = date(2025, 1, 1)
EARLIEST_BIRTH = date(1940, 1, 1)
LATEST_BIRTH = date(2007, 12, 31)
MAX_SERIAL = 9999


@dataclass(frozen=True)
class SeedResult:
    created: int
    existing: int


def synthetic_citizen(number: int, *, site: str, kabkota: str) -> RegisterCitizen:
    """Synthetic citizen ``number`` (1, 2, ...): deterministic, structurally valid and consistent."""
    rng = random.Random(SEED_BASE + number)
    born = EARLIEST_BIRTH + timedelta(days=rng.randint(0, (LATEST_BIRTH - EARLIEST_BIRTH).days))
    sex = rng.choice((Sex.MALE, Sex.FEMALE))
    # Serial and kecamatan follow the number, so two numbers never share a NIK.
    serial = (number - 1) % MAX_SERIAL + 1
    district = (number - 1) // MAX_SERIAL % 40 + 1
    province, regency = kabkota[:2], int(kabkota[2:])
    nik = generate_test_nik(
        rng,
        province_code=province,
        regency=regency,
        district=district,
        birth_date=born,
        sex=sex,
        serial=serial,
        today=GENERATED_ON,
    )
    issued = date(2010, 1, 1) + timedelta(days=rng.randint(0, 5000))
    kk = generate_test_nik(
        rng,
        province_code=province,
        regency=regency,
        district=district,
        birth_date=issued,
        sex=Sex.MALE,
        serial=serial,
        today=GENERATED_ON,
    )
    return RegisterCitizen(
        nik=nik,
        kk_number=kk,
        full_name=f"Warga Uji {number:04d}",
        birth_date=born,
        birth_place="Kota Sukamaju",
        sex=sex,
        domicile_kabkota=kabkota,
        site=site,
        actor=SEED_ACTOR,
    )


async def seed(settings: IdentitySettings, *, count: int, start: int = 1) -> SeedResult:
    """Register synthetic citizens ``start`` .. ``start + count - 1`` that are not registered yet."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database:
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine, MIGRATIONS)
        keys = citizen_keys(settings)
        catalogue = catalogue_of(settings)
        kabkota = next((s.kabkota for s in catalogue.sites if s.code == settings.site), FALLBACK_KABKOTA)
        clock = SystemClock()
        ports = Ports(
            clock=clock,
            calendar=CatalogueCalendar(catalogue),
            pseudonymiser=keys,
            agencies=CatalogueAgencies(catalogue),
        )
        sessions = session_factory(engine)
        created = existing = 0
        numbers = list(range(start, start + count))
        for offset in range(0, len(numbers), CHUNK):
            async with IdentityUnitOfWork(sessions, keys) as uow:
                for number in numbers[offset : offset + CHUNK]:
                    cmd = synthetic_citizen(number, site=settings.site, kabkota=kabkota)
                    try:
                        registration = await register_citizen(cmd, uow, ports)
                    except AlreadyRegistered:
                        existing += 1
                        continue
                    if number % DECEASED_EVERY == 0:
                        registration.citizen.change_status(CitizenStatus.DECEASED, at=clock.now())
                        await uow.citizens.save_status(registration.citizen)
                    created += 1
                await uow.commit()
        return SeedResult(created=created, existing=existing)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mpp.identity.seed", description="Register synthetic citizens for demos."
    )
    parser.add_argument("--count", type=int, required=True, help="how many synthetic citizens")
    parser.add_argument("--start", type=int, default=1, help="number of the first one (default 1)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.start < 1:
        parser.error("--count and --start must be at least 1")
    settings = IdentitySettings()
    result = asyncio.run(seed(settings, count=args.count, start=args.start))
    print(f"identity seed: {result.created} citizens registered, {result.existing} already present")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
