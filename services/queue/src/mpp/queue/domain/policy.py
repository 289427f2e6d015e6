"""The ordering policy of a queue, as data, and the choice of the next ticket to call.

A waiting ticket's score is ``weight(priority group) + ageing_per_minute * minutes waited``. Every ticket
ages at the same rate, so the order of two waiting tickets never changes with time: a ticket with weight
``w`` ranks exactly as a regular ticket that arrived ``w / ageing_per_minute`` minutes earlier (its *head
start*). The order is therefore a static key, the *rank* (issue time minus head start, in milliseconds),
which a database can index and lock in order; the score is shown to people because it reads better.

Consequences the tests check:

- nobody starves: a ticket can only be overtaken by tickets issued less than the largest head start after
  it, so with a steady arrival stream its wait is bounded;
- among tickets with equal rank the earlier issue wins, then the lower sequence number (FIFO);
- with ``priority_every_nth = N`` a counter whose last ``N - 1`` calls went to the regular lane calls the
  best priority ticket next, if one waits, whatever the scores say;
- the choice depends only on its inputs (deterministic).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mpp.contracts.events.common import PriorityGroup

MS_PER_MINUTE = 60_000
TOP_CANDIDATES = 5

DEFAULT_WEIGHTS: dict[PriorityGroup, float] = {
    PriorityGroup.LANSIA: 30.0,
    PriorityGroup.DISABILITAS: 30.0,
    PriorityGroup.IBU_HAMIL: 30.0,
    PriorityGroup.ANAK: 15.0,
    PriorityGroup.KORBAN_BENCANA: 30.0,
}


class PolicyError(ValueError):
    """A policy document that cannot be used; ``problems`` name each bad field in Bahasa Indonesia."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['problem']}" for p in problems))


class OrderingPolicy(BaseModel):
    """How one agency's queue at one site is ordered (or a site's default for all its agencies)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[PriorityGroup, float] = Field(
        default_factory=lambda: dict(DEFAULT_WEIGHTS),
        description="Score bonus of each priority group, in points; groups left out get 0.",
    )
    ageing_per_minute: float = Field(
        default=1.0, description="Points a waiting ticket gains per minute waited; must be above 0."
    )
    priority_every_nth: int | None = Field(
        default=None,
        description="When set to N, at least every Nth call of a counter goes to the priority lane.",
    )
    max_calls: int = Field(default=3, description="First call plus recalls before a ticket is a no-show.")
    transfer_credit_minutes: int = Field(
        default=15, description="Largest waiting credit a transferred ticket brings to its new queue."
    )

    @field_validator("weights", mode="before")
    @classmethod
    def _known_groups(cls, value: Any) -> Any:
        if isinstance(value, dict):
            known = {g.value for g in PriorityGroup}
            unknown = sorted(str(k) for k in value if str(k) not in known)
            if unknown:
                raise ValueError(
                    f"kelompok prioritas tidak dikenal: {', '.join(unknown)} "
                    f"(yang dikenal: {', '.join(sorted(known))})"
                )
        return value

    @model_validator(mode="after")
    def _sane(self) -> Self:
        negative = sorted(g.value for g, w in self.weights.items() if w < 0)
        if negative:
            raise ValueError(f"bobot tidak boleh negatif: {', '.join(negative)}")
        if self.weights.get(PriorityGroup.NONE, 0.0) != 0.0:
            raise ValueError("bobot kelompok 'none' (antrean reguler) harus 0")
        if not self.ageing_per_minute > 0:
            raise ValueError("ageing_per_minute harus lebih dari 0 agar tidak ada yang menunggu selamanya")
        if self.priority_every_nth is not None and self.priority_every_nth < 2:
            raise ValueError("priority_every_nth harus minimal 2 (atau kosong)")
        if not 1 <= self.max_calls <= 10:
            raise ValueError("max_calls harus antara 1 dan 10")
        if not 0 <= self.transfer_credit_minutes <= 240:
            raise ValueError("transfer_credit_minutes harus antara 0 dan 240")
        return self

    @classmethod
    def load(cls, document: Any) -> OrderingPolicy:
        """Validate a policy document; :class:`PolicyError` lists every problem."""
        try:
            return cls.model_validate(document)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "policy"
                message = str(err["msg"]).removeprefix("Value error, ")
                problems.append({"field": where, "problem": message})
            raise PolicyError(problems) from None

    def weight(self, group: PriorityGroup) -> float:
        return self.weights.get(group, 0.0)

    def head_start_ms(self, group: PriorityGroup) -> int:
        """How much earlier than its issue time a ticket of ``group`` ranks, in milliseconds."""
        return round(self.weight(group) / self.ageing_per_minute * MS_PER_MINUTE)

    def rank(self, group: PriorityGroup, queued_at: datetime) -> int:
        """The static order key of a waiting ticket: lower is called first."""
        return epoch_ms(queued_at) - self.head_start_ms(group)

    def score(self, group: PriorityGroup, queued_at: datetime, now: datetime) -> float:
        waited_min = max(0, epoch_ms(now) - epoch_ms(queued_at)) / MS_PER_MINUTE
        return round(self.weight(group) + self.ageing_per_minute * waited_min, 3)


def epoch_ms(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return round(at.timestamp() * 1000)


@dataclass(frozen=True)
class Candidate:
    """A waiting ticket as the policy sees it: no personal data, only what ordering needs."""

    ticket_id: str
    number: str
    priority_group: PriorityGroup
    queued_at: datetime
    """When it joined this queue (its issue time, earlier for a transferred ticket with credit)."""
    seq: int
    """Order of issue; breaks ties among equal ranks (FIFO)."""

    @property
    def priority(self) -> bool:
        return self.priority_group is not PriorityGroup.NONE


@dataclass(frozen=True)
class CounterState:
    """What the counter remembers between calls."""

    calls_since_priority: int = 0
    """Calls since the last one that went to a priority ticket."""


class Rule(StrEnum):
    HIGHEST_SCORE = "highest_score"
    FIFO_TIE = "fifo_tie"
    EVERY_NTH = "priority_every_nth"
    ONLY_CANDIDATE = "only_candidate"


@dataclass(frozen=True)
class Decision:
    ticket: Candidate
    rule: Rule
    explanation: dict[str, Any]

    def next_counter_state(self, state: CounterState) -> CounterState:
        return CounterState(0 if self.ticket.priority else state.calls_since_priority + 1)


RULE_LABELS = {
    Rule.HIGHEST_SCORE: "Skor tertinggi (prioritas + lama menunggu)",
    Rule.FIFO_TIE: "Skor sama: yang lebih dulu datang",
    Rule.EVERY_NTH: "Giliran jalur prioritas (setiap panggilan ke-N)",
    Rule.ONLY_CANDIDATE: "Satu-satunya tiket yang menunggu",
}


def order_key(policy: OrderingPolicy, c: Candidate) -> tuple[int, int, int, str]:
    return (policy.rank(c.priority_group, c.queued_at), epoch_ms(c.queued_at), c.seq, c.ticket_id)


def choose_next(
    waiting: Sequence[Candidate],
    policy: OrderingPolicy,
    now: datetime,
    counter_state: CounterState,
    available: Collection[str] | None = None,
) -> Decision | None:
    """The ticket a counter calls next and why, or None when nobody it may take waits.

    ``available`` (ticket ids) restricts the choice to the tickets this counter may take; the others are
    still ranked and shown in the explanation (a ticket another counter is calling at this instant).
    """
    ordered = sorted(waiting, key=lambda c: order_key(policy, c))
    pool = [c for c in ordered if available is None or c.ticket_id in available]
    if not pool:
        return None
    best = pool[0]
    rule = Rule.HIGHEST_SCORE
    after = ordered[ordered.index(best) + 1 :]
    if len(ordered) == 1:
        rule = Rule.ONLY_CANDIDATE
    elif after and policy.rank(after[0].priority_group, after[0].queued_at) == policy.rank(
        best.priority_group, best.queued_at
    ):
        rule = Rule.FIFO_TIE
    nth = policy.priority_every_nth
    if nth is not None and not best.priority and counter_state.calls_since_priority >= nth - 1:
        lane = [c for c in pool if c.priority]
        if lane:
            best, rule = lane[0], Rule.EVERY_NTH
    in_use = [
        c.ticket_id for c in ordered if c not in pool and order_key(policy, c) < order_key(policy, best)
    ]
    top = ordered[:TOP_CANDIDATES]
    if best not in top:
        top = [*top[: TOP_CANDIDATES - 1], best]
    explanation: dict[str, Any] = {
        "rule": rule.value,
        "rule_label": RULE_LABELS[rule],
        "decided_at": now.isoformat(),
        "chosen": best.ticket_id,
        "chosen_number": best.number,
        "calls_since_priority": counter_state.calls_since_priority,
        "policy": {
            "weights": {g.value: w for g, w in sorted(policy.weights.items())},
            "ageing_per_minute": policy.ageing_per_minute,
            "priority_every_nth": policy.priority_every_nth,
        },
        "candidates": [
            {
                "ticket_id": c.ticket_id,
                "number": c.number,
                "priority_group": c.priority_group.value,
                "waited_minutes": round(max(0, epoch_ms(now) - epoch_ms(c.queued_at)) / MS_PER_MINUTE, 1),
                "score": policy.score(c.priority_group, c.queued_at, now),
            }
            for c in top
        ],
        "waiting_considered": len(ordered),
        "skipped_in_use": in_use,
    }
    return Decision(best, rule, explanation)
