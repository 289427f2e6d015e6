"""The ordering policy: validation at load, and properties of choose_next checked with hypothesis."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpp.contracts.events.common import PriorityGroup
from mpp.queue.domain.policy import (
    Candidate,
    CounterState,
    OrderingPolicy,
    PolicyError,
    Rule,
    choose_next,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
GROUPS = list(PriorityGroup)
PRIORITY = [g for g in PriorityGroup if g is not PriorityGroup.NONE]


def ticket(i: int, group: PriorityGroup = PriorityGroup.NONE, minute: float = 0.0) -> Candidate:
    return Candidate(f"t{i:04d}", f"A-{i % 1000:03d}", group, T0 + timedelta(minutes=minute), i)


class TestLoadPolicy:
    def test_the_default_policy_is_valid(self) -> None:
        policy = OrderingPolicy.load({})

        assert policy.weight(PriorityGroup.LANSIA) > 0
        assert policy.weight(PriorityGroup.NONE) == 0

    @pytest.mark.parametrize(
        ("document", "field", "words"),
        [
            ({"weights": {"vip": 10}}, "weights", "tidak dikenal: vip"),
            ({"weights": {"lansia": -1}}, "policy", "tidak boleh negatif: lansia"),
            ({"weights": {"none": 5}}, "policy", "harus 0"),
            ({"ageing_per_minute": 0}, "policy", "ageing_per_minute harus lebih dari 0"),
            ({"priority_every_nth": 1}, "policy", "minimal 2"),
            ({"max_calls": 0}, "policy", "max_calls"),
            ({"surprise": True}, "surprise", "Extra inputs"),
        ],
    )
    def test_a_bad_document_names_its_problem(
        self, document: dict[str, object], field: str, words: str
    ) -> None:
        with pytest.raises(PolicyError) as raised:
            OrderingPolicy.load(document)

        [problem] = raised.value.problems
        assert problem["field"] == field
        assert words in problem["problem"]


class TestChooseNext:
    def test_nobody_waiting_gives_no_decision(self) -> None:
        assert choose_next([], OrderingPolicy(), T0, CounterState()) is None

    def test_a_priority_ticket_goes_ahead_of_recent_arrivals_only(self) -> None:
        policy = OrderingPolicy(weights={PriorityGroup.LANSIA: 30}, ageing_per_minute=1)
        early = ticket(1, minute=0)
        lansia = ticket(2, PriorityGroup.LANSIA, minute=20)
        late = ticket(3, minute=10)

        decision = choose_next([early, lansia, late], policy, T0 + timedelta(minutes=25), CounterState())

        assert decision is not None
        assert decision.ticket == lansia
        assert decision.rule is Rule.HIGHEST_SCORE
        scores = {c["ticket_id"]: c["score"] for c in decision.explanation["candidates"]}
        assert scores == {"t0002": 35.0, "t0001": 25.0, "t0003": 15.0}

        older = ticket(4, minute=-40)
        decision = choose_next([older, lansia], policy, T0 + timedelta(minutes=25), CounterState())
        assert decision is not None and decision.ticket == older

    def test_the_explanation_names_the_every_nth_rule(self) -> None:
        policy = OrderingPolicy(weights={PriorityGroup.ANAK: 1}, priority_every_nth=3)
        regular, child = ticket(1, minute=0), ticket(2, PriorityGroup.ANAK, minute=30)

        decision = choose_next([regular, child], policy, T0 + timedelta(minutes=31), CounterState(2))

        assert decision is not None
        assert decision.ticket == child
        assert decision.explanation["rule"] == "priority_every_nth"
        assert decision.next_counter_state(CounterState(2)) == CounterState(0)

    def test_a_ticket_another_counter_holds_is_skipped_and_reported(self) -> None:
        head, second = ticket(1, minute=0), ticket(2, minute=1)

        decision = choose_next(
            [head, second], OrderingPolicy(), T0 + timedelta(minutes=5), CounterState(), {"t0002"}
        )

        assert decision is not None
        assert decision.ticket == second
        assert decision.explanation["skipped_in_use"] == ["t0001"]
        assert choose_next([head], OrderingPolicy(), T0, CounterState(), set()) is None


policies = st.builds(
    OrderingPolicy,
    weights=st.dictionaries(st.sampled_from(PRIORITY), st.integers(0, 60).map(float)),
    ageing_per_minute=st.sampled_from([0.5, 1.0, 2.0]),
    priority_every_nth=st.none() | st.integers(2, 6),
)
candidates = st.lists(st.tuples(st.sampled_from(GROUPS), st.integers(0, 120)), min_size=1, max_size=30).map(
    lambda rows: [ticket(i, g, m) for i, (g, m) in enumerate(rows)]
)


class TestChooseNextProperties:
    @given(policy=policies, waiting=candidates, since=st.integers(0, 8), seed=st.integers(0, 2**16))
    def test_the_choice_is_deterministic_whatever_the_input_order(
        self, policy: OrderingPolicy, waiting: list[Candidate], since: int, seed: int
    ) -> None:
        now = T0 + timedelta(minutes=150)
        shuffled = list(waiting)
        random.Random(seed).shuffle(shuffled)

        first = choose_next(waiting, policy, now, CounterState(since))
        second = choose_next(shuffled, policy, now, CounterState(since))

        assert first is not None and second is not None
        assert (first.ticket, first.rule, first.explanation) == (
            second.ticket,
            second.rule,
            second.explanation,
        )

    @given(
        group=st.sampled_from(GROUPS),
        minutes=st.lists(st.integers(0, 30), min_size=1, max_size=30),
        policy=policies,
    )
    def test_equals_are_served_first_come_first_served(
        self, group: PriorityGroup, minutes: list[int], policy: OrderingPolicy
    ) -> None:
        waiting = [ticket(i, group, m) for i, m in enumerate(minutes)]

        decision = choose_next(waiting, policy, T0 + timedelta(minutes=60), CounterState())

        assert decision is not None
        assert decision.ticket == min(waiting, key=lambda c: (c.queued_at, c.seq))

    @given(
        policy=policies.filter(lambda p: p.priority_every_nth is not None),
        arrivals=st.lists(st.sampled_from(GROUPS), min_size=20, max_size=80),
    )
    def test_every_nth_call_goes_to_the_priority_lane_while_it_has_tickets(
        self, policy: OrderingPolicy, arrivals: list[PriorityGroup]
    ) -> None:
        nth = policy.priority_every_nth
        assert nth is not None
        waiting = [ticket(i, g, i) for i, g in enumerate(arrivals)]
        state = CounterState()
        regular_run = 0
        now = T0 + timedelta(minutes=len(arrivals))
        while waiting:
            lane_waiting = any(c.priority for c in waiting)
            decision = choose_next(waiting, policy, now, state)
            assert decision is not None
            waiting.remove(decision.ticket)
            state = decision.next_counter_state(state)
            regular_run = 0 if decision.ticket.priority else regular_run + 1
            if lane_waiting:
                assert regular_run <= nth - 1
            now += timedelta(minutes=1)

    @settings(max_examples=60, deadline=None)
    @given(
        policy=policies,
        backlog=st.lists(st.sampled_from(GROUPS), max_size=15),
        stream=st.lists(st.sampled_from(GROUPS), min_size=30, max_size=150),
    )
    def test_nobody_starves_under_ageing(
        self, policy: OrderingPolicy, backlog: list[PriorityGroup], stream: list[PriorityGroup]
    ) -> None:
        """One arrival and one call per minute: every ticket is called within a bound that depends only on
        the backlog, the largest head start and the every-Nth rule, never on how long the stream runs."""
        head_start = max((policy.weight(g) / policy.ageing_per_minute for g in PriorityGroup), default=0.0)
        bound = len(backlog) + head_start + 2
        if policy.priority_every_nth is not None:
            nth = policy.priority_every_nth
            bound = bound * nth / (nth - 1) + 2
        waiting = [ticket(i, g, 0) for i, g in enumerate(backlog)]
        issued = {c.ticket_id: 0 for c in waiting}
        waited: dict[str, int] = {}
        state = CounterState()
        minute = 0
        arrivals = iter(stream)
        while waiting or minute < len(stream):
            group = next(arrivals, None)
            if group is not None:
                new = ticket(len(issued), group, minute)
                waiting.append(new)
                issued[new.ticket_id] = minute
            decision = choose_next(waiting, policy, T0 + timedelta(minutes=minute), state)
            if decision is not None:
                waiting.remove(decision.ticket)
                state = decision.next_counter_state(state)
                waited[decision.ticket.ticket_id] = minute - issued[decision.ticket.ticket_id]
            minute += 1

        assert set(waited) == set(issued)
        assert max(waited.values()) <= math.ceil(bound)
