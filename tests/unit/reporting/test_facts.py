"""Folding events into additive facts: the event's own local day and hour, one increment per key,
recalls and unrelated events ignored, SLA outcomes from the catalogue, no personal data in any key."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel, PriorityGroup
from mpp.contracts.events.licensing import ApplicationApprovedV1, PermitIssuedV1
from mpp.contracts.events.queue import (
    ServiceCompletedV1,
    SkmScores,
    SurveyChannel,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.examples import example_payload
from mpp.reporting.domain.facts import Bucket, Count, FactKey, HistogramKey, HourKey, fold_facts
from mpp.reporting.domain.percentiles import bucket_of
from mpp.reporting.domain.sla import catalogue_sla
from tests.unit.reporting.builders import CITIZEN, catalogue_for, generate, sites_for

pytestmark = pytest.mark.unit

WIB = "mpp-wib"
WITA = "mpp-wita"
ZONES = {WIB: ZoneInfo("Asia/Jakarta"), WITA: ZoneInfo("Asia/Makassar")}
# 23:30 on 2 March in WIB, already 00:30 on 3 March in WITA.
LATE = datetime(2026, 3, 2, 16, 30, tzinfo=UTC)
MAR_2, MAR_3 = date(2026, 3, 2), date(2026, 3, 3)


def tz(site: str) -> ZoneInfo:
    return ZONES[site]


def wrap(payload: EventPayload, site: str = WIB, agency: str = "dpmptsp") -> Envelope:
    return Envelope.wrap(payload, producer="mpp.queue", agency=agency, site=site, subject="x-1")


def visit(at: datetime, site: str = WIB) -> Envelope:
    return wrap(VisitStartedV1(visit_id="vis-1", channel=Channel.WALK_IN, started_at=at), site)


def ticket(at: datetime, *, site: str = WIB, priority: PriorityGroup = PriorityGroup.NONE) -> Envelope:
    return wrap(
        TicketIssuedV1(
            visit_id="vis-1",
            ticket_id="tik-1",
            ticket_number="A-001",
            service_type="polres.skck",
            agency="polres",
            priority_group=priority,
            channel=Channel.ONLINE,
            issued_at=at,
        ),
        site,
    )


def called(at: datetime, waiting: int, call_count: int = 1) -> Envelope:
    return wrap(
        TicketCalledV1(
            visit_id="vis-1",
            ticket_id="tik-1",
            ticket_number="A-001",
            service_type="polres.skck",
            agency="polres",
            counter="loket-01",
            officer_ref="pet-1",
            call_count=call_count,
            called_at=at,
            waiting_seconds=waiting,
        )
    )


class TestLocalDays:
    def test_the_same_instant_lands_on_each_sites_own_day_and_hour(self) -> None:
        facts = fold_facts([visit(LATE, WIB), visit(LATE, WITA)], tz)

        assert facts.counts[FactKey(MAR_2, WIB, "", "", "visits")] == 1
        assert facts.counts[FactKey(MAR_3, WITA, "", "", "visits")] == 1
        assert facts.hourly[HourKey(MAR_2, WIB, "", "", 23, "visits")] == 1
        assert facts.hourly[HourKey(MAR_3, WITA, "", "", 0, "visits")] == 1

    def test_a_late_event_lands_on_the_day_it_happened_not_the_day_it_arrived(self) -> None:
        # Published a week later: the envelope's time says so, the payload's time decides.
        late = Envelope.wrap(
            VisitStartedV1(visit_id="vis-9", channel=Channel.WALK_IN, started_at=LATE),
            producer="mpp.queue",
            agency="dpmptsp",
            site=WIB,
            subject="vis-9",
            occurred_at=LATE + timedelta(days=7),
        )

        facts = fold_facts([late], tz)

        assert set(facts.counts) == {
            FactKey(MAR_2, WIB, "", "", "visits"),
            FactKey(MAR_2, WIB, "", "", "visits_walk_in"),
        }

    def test_out_of_order_batches_add_up_to_the_same_facts(self) -> None:
        sites = sites_for("u")
        catalogue = catalogue_for(sites)
        generated = generate(3, sites, [MAR_2, MAR_3], 15, catalogue)
        zones = {s.code: s.tz for s in sites}
        events = generated.envelopes
        in_order = fold_facts(sorted(events, key=lambda e: e.occurred_at), zones.__getitem__)
        total_counts: Counter[Count] = Counter()
        total_histogram: Counter[Bucket] = Counter()
        for first in range(0, len(events), 37):
            part = fold_facts(list(reversed(events[first : first + 37])), zones.__getitem__)
            total_counts.update(part.counts)
            total_histogram.update(part.histogram)

        assert total_counts == in_order.counts
        assert total_histogram == in_order.histogram


class TestQueueFacts:
    def test_a_ticket_counts_by_channel_priority_and_hour(self) -> None:
        at = datetime(2026, 3, 2, 2, 15, tzinfo=UTC)  # 09:15 WIB

        facts = fold_facts([ticket(at, priority=PriorityGroup.LANSIA)], tz)

        key = (MAR_2, WIB, "polres", "polres.skck")
        assert facts.counts == Counter(
            {
                FactKey(*key, "tickets_issued"): 1,
                FactKey(*key, "tickets_online"): 1,
                FactKey(*key, "priority_issued_lansia"): 1,
            }
        )
        assert facts.hourly == Counter({HourKey(*key, 9, "tickets_issued"): 1})

    def test_waiting_time_counts_the_first_call_on_the_issue_day_and_hour(self) -> None:
        # Issued 23:50 WIB on 2 March, first called 00:10 on 3 March, recalled later.
        issued_at = datetime(2026, 3, 2, 16, 50, tzinfo=UTC)
        first = called(issued_at + timedelta(minutes=20), 1200)
        recall = called(issued_at + timedelta(minutes=25), 1500, call_count=2)

        facts = fold_facts([first, recall], tz)

        key = (MAR_2, WIB, "polres", "polres.skck")
        assert facts.histogram == Counter({HistogramKey(*key, 23, "waiting", 120): 1})
        assert facts.counts[FactKey(*key, "waiting_count")] == 1
        assert facts.counts[FactKey(*key, "waiting_seconds_sum")] == 1200

    def test_service_time_and_priority_served(self) -> None:
        payload = example_payload(ServiceCompletedV1)
        assert isinstance(payload, ServiceCompletedV1)

        facts = fold_facts([wrap(payload)], tz)

        day = payload.issued_at.astimezone(ZONES[WIB]).date()
        key = (day, WIB, payload.agency, payload.service_type)
        assert facts.counts[FactKey(*key, "service_seconds_sum")] == payload.service_seconds
        assert facts.counts[FactKey(*key, "tickets_served")] == 1
        hour = payload.issued_at.astimezone(ZONES[WIB]).hour
        bucket = bucket_of(payload.service_seconds)
        assert facts.histogram[HistogramKey(*key, hour, "service", bucket)] == 1


class TestSurveys:
    def test_scores_are_summed_per_element_and_unanswered_elements_are_left_out(self) -> None:
        survey = SurveySubmittedV1(
            survey_id="skm-1",
            service_type="polres.skck",
            agency="polres",
            scores=SkmScores(u1=4, u2=3, u9=2),
            channel=SurveyChannel.KIOSK,
            submitted_at=datetime(2026, 3, 2, 3, 0, tzinfo=UTC),
        )

        facts = fold_facts([wrap(survey), wrap(survey)], tz)

        measures = {FactKey(*k).measure: n for k, n in facts.counts.items()}
        assert measures == {
            "skm_respondents": 2,
            "skm_u1_answers": 2,
            "skm_u1_sum": 8,
            "skm_u2_answers": 2,
            "skm_u2_sum": 6,
            "skm_u9_answers": 2,
            "skm_u9_sum": 4,
        }


class TestSla:
    def _permit(self, submitted: datetime, issued: datetime, service_type: str) -> PermitIssuedV1:
        return PermitIssuedV1(
            application_id="app-1",
            permit_number="P-1",
            service_type=service_type,
            applicant_ref=CITIZEN,
            issued_at=issued,
            submitted_at=submitted,
        )

    @pytest.mark.parametrize(
        ("service_type", "elapsed", "within"),
        [
            ("dpmptsp.nib", timedelta(minutes=60), 1),
            ("dpmptsp.nib", timedelta(minutes=61), 0),
            ("disdukcapil.kk", timedelta(days=1), 1),
            # Friday to Monday is one working day; Friday to Tuesday two.
            ("disdukcapil.kk", timedelta(days=4), 0),
        ],
    )
    def test_without_an_outcome_in_the_event_the_catalogue_decides(
        self, service_type: str, elapsed: timedelta, within: int
    ) -> None:
        sites = sites_for("sla")
        site = sites[0].code
        zones = {s.code: s.tz for s in sites}
        check = catalogue_sla(catalogue_for(sites), zones.__getitem__)
        submitted = datetime(2026, 3, 6, 3, 0, tzinfo=UTC)  # Friday 10:00 WIB
        permit = self._permit(submitted, submitted + elapsed, service_type)

        facts = fold_facts([wrap(permit, site, service_type.partition(".")[0])], zones.__getitem__, check)

        measures = Counter[str]()
        for k, n in facts.counts.items():
            measures[FactKey(*k).measure] += n
        assert measures["applications_sla_known"] == 1
        assert measures["applications_within_sla"] == within

    def test_times_without_an_offset_are_read_as_utc(self) -> None:
        # Early licensing releases on SQLite sent submitted_at without its offset.
        sites = sites_for("sla")
        site = sites[0].code
        zones = {s.code: s.tz for s in sites}
        check = catalogue_sla(catalogue_for(sites), zones.__getitem__)
        submitted = datetime(2026, 3, 6, 3, 0)  # Friday 10:00 WIB, as UTC without an offset
        issued = datetime(2026, 3, 6, 3, 59, tzinfo=UTC)
        permit = self._permit(submitted, issued, "dpmptsp.nib")

        facts = fold_facts([wrap(permit, site, "dpmptsp")], zones.__getitem__, check)

        measures = Counter[str]()
        for k, n in facts.counts.items():
            measures[FactKey(*k).measure] += n
        assert (measures["applications_sla_known"], measures["applications_within_sla"]) == (1, 1)
        assert {FactKey(*k).day for k in facts.counts} == {date(2026, 3, 6)}

    def test_an_unknown_service_has_no_sla_outcome(self) -> None:
        sites = sites_for("sla")
        zones = {s.code: s.tz for s in sites}
        check = catalogue_sla(catalogue_for(sites), zones.__getitem__)
        at = datetime(2026, 3, 6, 3, 0, tzinfo=UTC)

        facts = fold_facts(
            [wrap(self._permit(at, at, "dpmptsp.tak-dikenal"), sites[0].code)], zones.__getitem__, check
        )

        assert {FactKey(*k).measure for k in facts.counts} == {"permits_issued", "applications_finished"}


def test_events_outside_the_catalogue_of_metrics_leave_no_facts() -> None:
    assert not fold_facts([wrap(example_payload(ApplicationApprovedV1))], tz)


def test_no_key_holds_personal_data() -> None:
    sites = sites_for("pd")
    generated = generate(5, sites, [MAR_2], 30, catalogue_for(sites))
    zones = {s.code: s.tz for s in sites}

    facts = fold_facts(generated.envelopes, zones.__getitem__)

    texts = {str(v) for k in (*facts.counts, *facts.hourly, *facts.histogram) for v in k}
    assert len(texts) > 10
    assert CITIZEN not in texts
    assert not any(t.startswith(("vis-", "tik-", "app-", "adu-", "skm-", "cit_")) for t in texts)
