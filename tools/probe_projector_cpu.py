"""What the reporting projector's Python side costs per event, without a broker or a database.

    .venv/bin/python -m tools.probe_projector_cpu [--batch 50000] [--batches 5] [--visits-per-day 300]

Builds Kafka records of the bench's visit mix (:func:`tools.bench_reporting.visit_events`: same sites,
services and seed, ``--visits-per-day`` visits a day at each of 20 sites), then hands them to the kit's
``EventConsumer.process`` with the reporting projector as its handler, batch by batch, as a rebuild does:
parsing, the inbox claim, the fold, the statements' parameters, the offsets and the garbage collector's
work, everything but the fetch and the driver. The session is a stand-in that answers every statement at
once (PostgreSQL's statements are built, none is sent). Prints the process CPU time per event of each
batch: steadier than a rebuild's wall time on a busy machine, where PostgreSQL's share varies from run to
run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aiokafka import TopicPartition

from mpp.contracts.kafka import to_record
from mpp.contracts.masterdata import load_demo_catalogue
from mpp.kit.consumer import EventConsumer
from mpp.reporting.api.messaging import projector
from mpp.reporting.app import zones_of
from mpp.reporting.domain.facts import FACT_TYPES
from mpp.reporting.domain.projection import PROJECTED_TYPES
from mpp.reporting.domain.sla import catalogue_sla
from mpp.reporting.persistence.tables import consumer_offsets, inbox
from tools.bench_reporting import visit_events


@dataclass(frozen=True, slots=True)
class Record:
    """The attributes of an aiokafka ``ConsumerRecord`` the consumer reads."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class _Dialect:
    name = "postgresql"


class _Result:
    def scalars(self) -> _Result:
        return self

    def all(self) -> list[Any]:
        return []

    def one(self) -> tuple[Any, ...]:
        """The row of a batch's first statement: the work memory set, no roll-ups pending."""
        return ("64MB", False)


class StandInSession:
    """Answers every statement at once, as a PostgreSQL session with nothing stored would: no claimed
    event is a duplicate and no offset is stored yet."""

    dialect = _Dialect()

    def __init__(self) -> None:
        self.statements = 0

    def get_bind(self) -> StandInSession:
        return self

    async def execute(self, _statement: Any, _params: Any = None) -> _Result:
        self.statements += 1
        return _Result()

    async def scalar(self, _statement: Any, _params: Any = None) -> None:
        """A single value (the roll-ups' pending mark): none stored."""
        self.statements += 1

    def begin(self) -> StandInSession:
        return self

    async def __aenter__(self) -> StandInSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


def records(count: int, visits_per_day: int) -> list[Record]:
    """``count`` records of the bench's visit mix in time order, one partition."""
    catalogue = load_demo_catalogue()
    services = [(s.agency, s.code) for s in catalogue.service_types]
    sites = [catalogue.sites[0].code, *(f"mpp-bench-{i:03d}" for i in range(1, 20))]
    rng = random.Random(17)
    out: list[Record] = []
    visits = 0
    while len(out) < count:
        day = date(2025, 1, 1) + timedelta(days=visits // (visits_per_day * len(sites)))
        visits += 1
        for env in visit_events(rng, sites, services, day)[: count - len(out)]:
            key, value, headers = to_record(env)
            out.append(Record(env.topic, 0, len(out), key, value, headers))
    return out


async def measure(batch: int, batches: int, visits_per_day: int) -> tuple[list[float], int]:
    """Process CPU seconds per event of each batch, and how many events the projector applied."""
    catalogue = load_demo_catalogue()
    site_tz = zones_of(catalogue)
    consumer = EventConsumer(
        group_id="probe.projector",
        topics=["probe"],
        bootstrap="unused",
        sessions=StandInSession,  # type: ignore[arg-type]  # a stand-in for async_sessionmaker
        inbox=inbox,
        offsets=consumer_offsets,
        handler=projector(site_tz, catalogue_sla(catalogue, site_tz)),
        producer=None,  # the mix holds no poison record to dead-letter
        max_records=batch,
        event_types=PROJECTED_TYPES | FACT_TYPES,
        offsets_from_database_only=True,
    )
    made = records(batch * batches, visits_per_day)
    partition = TopicPartition("probe", 0)
    gc.collect()
    per_event = []
    for i in range(batches):
        chunk = made[i * batch : (i + 1) * batch]
        started = time.process_time()
        await consumer.process({partition: list(chunk)})
        per_event.append((time.process_time() - started) / len(chunk))
    return per_event, consumer.processed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--batch", type=int, default=50_000, help="records per batch (a rebuild's fetch)")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--visits-per-day", type=int, default=300, help="per site; the bench's sparse run uses 30")
    args = p.parse_args(argv)
    per_event, _applied = asyncio.run(measure(args.batch, args.batches, args.visits_per_day))
    micros = [round(s * 1e6, 2) for s in per_event]
    print(
        f"{args.batches} batches of {args.batch:,} records, {args.visits_per_day} visits a day per site: "
        f"process CPU per event {min(micros)} us (least), {round(statistics.median(micros), 2)} us (median); "
        f"each batch {micros}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
