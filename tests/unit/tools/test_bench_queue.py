"""The queue bench's catalogue and kiosk plans: a valid catalogue with the run's sites and counters, visits
of one or two distinct services that never run a prefix's daily numbers out, and a call summary that
counts a ticket handed out twice."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import pytest

from mpp.contracts.masterdata import load_catalogue
from tools.bench_queue import (
    MAX_PER_PREFIX,
    CallLog,
    CounterPlan,
    Kiosk,
    bench_catalogue,
    call_summary,
    even_prefixes,
    like_counters,
)

pytestmark = pytest.mark.unit


def test_the_catalogue_adds_the_runs_sites_and_counters() -> None:
    body, kiosks, calling = bench_catalogue("abc123", 3, 50)

    catalogue = load_catalogue(body)
    sites = {s.code for s in catalogue.sites}
    assert set(kiosks) | {calling} <= sites and len(kiosks) == 3
    at_calling = [c for c in catalogue.counters if c.site == calling]
    assert len(at_calling) == 50
    assert len({c.code for c in at_calling}) == 50
    services = {st.code: st.agency for st in catalogue.service_types}
    assert all(services[code] == c.agency for c in at_calling for code in c.service_types)


def test_kiosk_visits_ask_for_one_or_two_distinct_services_and_respect_the_prefix_cap() -> None:
    prefix_of = {"a.one": "A", "a.two": "A", "b.one": "B"}
    kiosk = Kiosk("site-x", "secret-" + "x" * 32, even_prefixes(prefix_of), prefix_of)
    sizes: Counter[int] = Counter()
    drawn: Counter[str] = Counter()
    with pytest.raises(RuntimeError, match="used up"):
        for _ in range(3 * MAX_PER_PREFIX):
            body, headers, n = kiosk.next()
            wanted = orjson.loads(body)["service_types"]
            assert len(wanted) == len(set(wanted)) == n
            sizes[n] += 1
            drawn.update(prefix_of[code] for code in wanted)
            assert headers["Authorization"].startswith("Bearer ")
    assert drawn == {"A": MAX_PER_PREFIX, "B": MAX_PER_PREFIX}
    assert sizes[1] > 0 and sizes[2] > 0


def test_calling_site_visits_follow_the_counters() -> None:
    counters = [CounterPlan("loket-1", ("x.only",), {}), CounterPlan("loket-2", ("y.one", "y.two"), {})]
    pick = like_counters(counters)
    rng = random.Random(1)
    assert {pick(rng) for _ in range(200)} == {"x.only", "y.one", "y.two"}


def test_a_ticket_called_twice_is_counted() -> None:
    log = CallLog(called=["t1", "t2", "t1"], call_next=[(0.0, 0.0, 0.01)] * 3)

    summary = call_summary(log, 1.0, "test")

    assert summary["duplicate_calls_in_responses"] == 1
    assert summary["calls"] == 3
