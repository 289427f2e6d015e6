"""The roll-ups filled at the end of a rebuild: every roll-up the projector keeps is filled, from a source
that is filled before it."""

from __future__ import annotations

import pytest

from mpp.reporting.persistence import repository
from mpp.reporting.persistence.tables import duration_histogram, metric_facts, metric_facts_site_monthly

pytestmark = pytest.mark.unit


def test_every_rollup_kept_batch_by_batch_is_filled_once() -> None:
    kept = [t.name for t, _keys in (*repository._FACT_ROLLUPS, *repository._HISTOGRAM_ROLLUPS)]
    filled = [rollup.name for rollup, _keys, _source, _values in repository._FILLS]
    assert sorted(filled) == sorted(kept)


def test_a_rollup_is_filled_from_a_daily_table_or_a_rollup_filled_before_it() -> None:
    daily = {metric_facts.name, duration_histogram.name}
    done: set[str] = set()
    for rollup, columns, source, values in repository._FILLS:
        assert source.name in daily | done, f"{rollup.name} from {source.name}"
        # The source holds every key column the roll-up groups by (a month from its day or month, a
        # block of buckets from its bucket) and the values it sums.
        held = {c.name for c in source.columns} | {"month"}
        if "bucket" in held:
            held.add("block")
        assert set(columns) <= held and set(values) <= held, rollup.name
        done.add(rollup.name)


def test_the_fill_sums_a_monthly_source_by_its_month() -> None:
    fill = [f for f in repository._FILLS if f[0] is metric_facts_site_monthly]
    (sql,) = [repository._fill_sql(*f).text for f in fill]
    assert sql.startswith("WITH d AS (SELECT *, month AS day FROM metric_facts_monthly)")
    assert "GROUP BY 1, 2, 3" in sql
