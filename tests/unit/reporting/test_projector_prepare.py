"""The projector's ``prepare`` step folds a batch a chunk at a time (as a pipelined consumer reads it) into
exactly the increments of folding the whole batch at once."""

from __future__ import annotations

from datetime import date

from mpp.kit.consumer import ReceivedEvent
from mpp.reporting.api.messaging import Folded, projector
from mpp.reporting.domain.facts import fold_facts
from mpp.reporting.domain.projection import fold
from mpp.reporting.domain.sla import catalogue_due, catalogue_sla
from tests.unit.reporting.builders import catalogue_for, generate, sites_for


def test_folding_chunk_by_chunk_gives_the_whole_batch_increments() -> None:
    sites = sites_for("prep")
    catalogue = catalogue_for(sites)
    zones = {s.code: s.tz for s in sites}
    site_tz = zones.__getitem__
    sla, due = catalogue_sla(catalogue, site_tz), catalogue_due(catalogue, site_tz)
    envelopes = generate(
        11, sites, [date(2026, 3, 30), date(2026, 3, 31), date(2026, 4, 1)], 40, catalogue
    ).envelopes
    events = [ReceivedEvent(env, env.topic, 0, n) for n, env in enumerate(envelopes)]
    handler = projector(site_tz, sla, due)

    folded: Folded | None = None
    for first in range(0, len(events), 97):
        folded = handler.prepare(events[first : first + 97], folded)

    assert folded is not None
    whole = fold_facts(envelopes, site_tz, sla, due)
    assert folded.counts == fold(envelopes, site_tz)
    assert folded.facts.counts == whole.counts
    assert folded.facts.hourly == whole.hourly
    assert folded.facts.histogram == whole.histogram
    assert folded.facts.late == whole.late
    assert sum(folded.types.values()) == len(envelopes)
    # A realistic batch: every kind of increment is there.
    assert folded.counts and whole.counts and whole.hourly and whole.histogram and whole.late
