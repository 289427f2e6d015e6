"""Workflows as configuration: the states and actions an application of a service type goes through.

A :class:`Workflow` lists its states (each with a kind and an optional SLA), the actions that move an
application from state to state (which roles may take them, whether a reason is needed, which contract
event they map to), the SLA of the whole process and the states in which the SLA clock stops. The
catalogue names a workflow for each service type that has one, so a new permit type with a new
process needs configuration, not code.

A workflow is checked when it is loaded, and every problem is reported with the workflow's code,
e.g. ``workflow 'pbg': action 'approve' goes to unknown state 'aproved'``. Interpretation is pure:
:meth:`Workflow.allowed_actions` and :meth:`Workflow.apply` answer what may happen next; storing the
new state and publishing the event is the service's job.

Labels are in Bahasa Indonesia: officers and citizens see them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

import mpp.contracts.events  # noqa: F401  (registers every contract event, which actions may emit)
from mpp.contracts.calendar import Sla
from mpp.contracts.envelope import registered_events
from mpp.contracts.events.common import Code

__all__ = [
    "ActorRole",
    "ReasonRequired",
    "RoleRefused",
    "StateKind",
    "TransitionRefused",
    "UnknownState",
    "Workflow",
    "WorkflowAction",
    "WorkflowError",
    "WorkflowState",
]

Label = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]


class StateKind(StrEnum):
    """What a state means for the application and its SLA clock."""

    INITIAL = "initial"
    """Where every application starts (exactly one per workflow); the clock runs."""
    ACTIVE = "active"
    """The agency is working on it; the clock runs unless the workflow pauses it here."""
    PAUSED = "paused"
    """Waiting for the citizen (e.g. returned for correction); the clock stops."""
    COMPLETED = "completed"
    """The service is delivered (e.g. the permit is issued) and the clock has ended for good, but
    later actions remain possible (e.g. revocation)."""
    FINAL = "final"
    """Nothing more happens (rejected, revoked, a letter handed over)."""


class ActorRole(StrEnum):
    """Who may take an action."""

    CITIZEN = "citizen"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"


class WorkflowError(Exception):
    """Base of the errors raised when interpreting a workflow."""


class UnknownState(WorkflowError, LookupError):
    """The workflow has no state with this code."""


class TransitionRefused(WorkflowError, ValueError):
    """The action cannot be taken in the current state (HTTP 409); ``allowed`` lists what can."""

    def __init__(self, state: str, action: str, allowed: Iterable[str]) -> None:
        self.state = state
        self.action = action
        self.allowed = list(allowed)
        super().__init__(
            f"action {action!r} is not allowed in state {state!r}; "
            f"allowed: {', '.join(self.allowed) or 'none'}"
        )


class RoleRefused(WorkflowError):
    """The action exists in this state but none of the caller's roles may take it (HTTP 403)."""

    def __init__(self, state: str, action: str, roles: Iterable[str], required: Iterable[str]) -> None:
        self.state = state
        self.action = action
        self.roles = sorted(str(r) for r in roles)
        self.required = [str(r) for r in required]
        super().__init__(
            f"action {action!r} in state {state!r} needs one of the roles {', '.join(self.required)}; "
            f"the caller has {', '.join(self.roles) or 'none'}"
        )


class ReasonRequired(WorkflowError, ValueError):
    """The action needs a reason (e.g. a rejection or a revocation) and none was given."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"action {action!r} needs a reason")


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WorkflowState(_Config):
    """One state of a workflow."""

    code: Code
    label: Label = Field(description="Name shown to officers and citizens, in Bahasa Indonesia.")
    kind: StateKind
    sla: Sla | None = Field(
        default=None, description="Time an application may spend in this state, if limited."
    )
    description: str = ""


class WorkflowAction(_Config):
    """One action: who may take it, from which states, and where it leads."""

    code: Code
    label: Label = Field(description="Name of the button or step, in Bahasa Indonesia.")
    from_states: tuple[Code, ...] = Field(min_length=1, description="States in which it may be taken.")
    to_state: Code
    roles: tuple[ActorRole, ...] = Field(min_length=1, description="Roles that may take it.")
    requires_reason: bool = Field(
        default=False, description="The officer must give a reason (shown to the applicant)."
    )
    emits: str | None = Field(
        default=None, description="Type of the contract event the action maps to, e.g. ApplicationVerified."
    )

    @field_validator("roles", mode="before")
    @classmethod
    def _roles_known(cls, value: Any, info: ValidationInfo) -> Any:
        known = [r.value for r in ActorRole]
        if isinstance(value, list | tuple):
            for role in value:
                if isinstance(role, str) and role not in known:
                    raise ValueError(
                        f"action {info.data.get('code')!r} names unknown role {role!r} "
                        f"(known: {', '.join(known)})"
                    )
        return value

    @field_validator("emits")
    @classmethod
    def _emits_a_contract_event(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value not in {
            c.event_type for c in registered_events(include_external=True)
        }:
            raise ValueError(f"action {info.data.get('code')!r} emits unknown event type {value!r}")
        return value


class Workflow(_Config):
    """The states and actions of one kind of application, with its SLA."""

    code: Code
    name: Label = Field(description="Name shown to officers, in Bahasa Indonesia.")
    description: str = ""
    states: tuple[WorkflowState, ...] = Field(min_length=1)
    actions: tuple[WorkflowAction, ...] = Field(min_length=1)
    total_sla: Sla = Field(description="Time limit of the whole process, as published in the standard.")
    clock_pauses_in: tuple[Code, ...] = Field(
        default=(), description="States in which the SLA clock stops (every paused state, and others)."
    )

    @model_validator(mode="after")
    def _well_formed(self) -> Self:
        problems = _structure_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    # Defined after the check above so that it wraps it too (the last validator defined is outermost).
    @model_validator(mode="wrap")
    @classmethod
    def _name_the_workflow(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        try:
            return handler(data)
        except ValidationError as exc:
            raise ValueError(f"workflow {_field(data, 'code')!r}: {_describe(exc, data)}") from None

    # Lookups

    @cached_property
    def _states_by_code(self) -> dict[str, WorkflowState]:
        return {s.code: s for s in self.states}

    @cached_property
    def _actions_by_state(self) -> dict[str, tuple[WorkflowAction, ...]]:
        return {s.code: tuple(a for a in self.actions if s.code in a.from_states) for s in self.states}

    def state(self, code: str) -> WorkflowState:
        try:
            return self._states_by_code[code]
        except KeyError:
            raise UnknownState(f"workflow {self.code!r} has no state {code!r}") from None

    def action(self, code: str) -> WorkflowAction:
        found = next((a for a in self.actions if a.code == code), None)
        if found is None:
            raise KeyError(f"workflow {self.code!r} has no action {code!r}")
        return found

    @property
    def initial_state(self) -> WorkflowState:
        return next(s for s in self.states if s.kind is StateKind.INITIAL)

    # Interpretation

    def actions_from(self, state: str) -> tuple[WorkflowAction, ...]:
        """Every action that may be taken in ``state``, whoever takes it."""
        self.state(state)
        return self._actions_by_state[state]

    def allowed_actions(self, state: str, roles: Collection[str]) -> list[WorkflowAction]:
        """The actions someone with ``roles`` may take in ``state``, in configuration order."""
        held = {str(r) for r in roles}
        return [a for a in self.actions_from(state) if held & {r.value for r in a.roles}]

    def apply(
        self, state: str, action: str, roles: Collection[str], *, reason: str | None = None
    ) -> WorkflowAction:
        """Check that someone with ``roles`` may take ``action`` in ``state``; returns the action
        (its ``to_state`` is the next state, ``emits`` the event to publish).

        Raises :class:`UnknownState`, :class:`TransitionRefused` (naming the allowed actions),
        :class:`RoleRefused`, or :class:`ReasonRequired` when the action needs a reason and
        ``reason`` is blank.
        """
        found = next((a for a in self.actions_from(state) if a.code == action), None)
        if found is None:
            raise TransitionRefused(state, action, [a.code for a in self.allowed_actions(state, roles)])
        if not {str(r) for r in roles} & {r.value for r in found.roles}:
            raise RoleRefused(state, action, roles, found.roles)
        if found.requires_reason and not (reason or "").strip():
            raise ReasonRequired(action)
        return found

    def clock_runs_in(self, state: str) -> bool:
        """Whether the SLA clock runs while an application is in ``state``."""
        kind = self.state(state).kind
        return kind in (StateKind.INITIAL, StateKind.ACTIVE) and state not in self.clock_pauses_in

    def is_finished(self, state: str) -> bool:
        """Whether the service is over in ``state`` (completed or final): the clock has ended."""
        return self.state(state).kind in (StateKind.COMPLETED, StateKind.FINAL)


def _structure_problems(workflow: Workflow) -> list[str]:
    states = {s.code: s for s in workflow.states}
    problems = [f"duplicate state code {c!r}" for c in _duplicates(s.code for s in workflow.states)]
    problems += [f"duplicate action code {c!r}" for c in _duplicates(a.code for a in workflow.actions)]

    initial = [s.code for s in workflow.states if s.kind is StateKind.INITIAL]
    if not initial:
        problems.append("no initial state")
    elif len(initial) > 1:
        problems.append(f"{len(initial)} initial states ({_quoted(initial)}); exactly one is needed")

    edges: dict[str, set[str]] = {code: set() for code in states}
    for action in workflow.actions:
        for source in action.from_states:
            if source not in states:
                problems.append(f"action {action.code!r} starts from unknown state {source!r}")
            elif states[source].kind is StateKind.FINAL:
                problems.append(f"final state {source!r} has outgoing action {action.code!r}")
        if action.to_state not in states:
            problems.append(f"action {action.code!r} goes to unknown state {action.to_state!r}")
        for source in action.from_states:
            if source in states and action.to_state in states:
                edges[source].add(action.to_state)

    outgoing = {source for a in workflow.actions for source in a.from_states}
    problems += [
        f"state {s.code!r} has no outgoing action (add one or make it final)"
        for s in workflow.states
        if s.kind is not StateKind.FINAL and s.code not in outgoing
    ]
    if len(initial) == 1:
        reachable = _reachable(initial[0], edges)
        problems += [
            f"state {code!r} is not reachable from the initial state {initial[0]!r}"
            for code in states
            if code not in reachable
        ]
    ends = {code for code, s in states.items() if s.kind in (StateKind.COMPLETED, StateKind.FINAL)}
    problems += [
        f"state {code!r} can reach no completed or final state"
        for code in states
        if code in outgoing and not _reachable(code, edges) & ends
    ]
    return problems + _clock_problems(workflow, states)


def _clock_problems(workflow: Workflow, states: dict[str, WorkflowState]) -> list[str]:
    problems: list[str] = []
    for code in workflow.clock_pauses_in:
        if code not in states:
            problems.append(f"clock_pauses_in names unknown state {code!r}")
        elif states[code].kind not in (StateKind.ACTIVE, StateKind.PAUSED):
            problems.append(f"the clock cannot pause in {states[code].kind.value} state {code!r}")
    problems += [
        f"paused state {s.code!r} is missing from clock_pauses_in"
        for s in workflow.states
        if s.kind is StateKind.PAUSED and s.code not in workflow.clock_pauses_in
    ]
    total = workflow.total_sla
    for s in workflow.states:
        if s.sla is None:
            continue
        if s.kind in (StateKind.COMPLETED, StateKind.FINAL):
            problems.append(f"{s.kind.value} state {s.code!r} cannot have an SLA")
        elif s.kind is not StateKind.PAUSED and s.sla.unit == total.unit and s.sla.value > total.value:
            problems.append(
                f"state {s.code!r} allows {s.sla.describe()}, more than the whole process "
                f"({total.describe()})"
            )
    return problems


def _reachable(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for target in edges.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def _duplicates(codes: Iterable[str]) -> list[str]:
    return sorted(code for code, n in Counter(codes).items() if n > 1)


def _quoted(codes: Iterable[str]) -> str:
    return ", ".join(repr(c) for c in codes)


def _field(data: Any, name: str) -> Any:
    return data.get(name) if isinstance(data, dict) else getattr(data, name, None)


def _describe(exc: ValidationError, data: Any) -> str:
    """The problems of a validation error, naming states and actions by their codes."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        if error["type"] == "value_error":
            problems.append(str(error["ctx"]["error"]))
            continue
        problem = f"{_where(error['loc'], data)}: {error['msg']}"
        if isinstance(error["input"], str | int) and error["type"] != "missing":
            problem += f" (got {error['input']!r})"
        problems.append(problem)
    return "; ".join(problems)


def _where(loc: tuple[int | str, ...], data: Any) -> str:
    if len(loc) >= 2 and loc[0] in ("states", "actions") and isinstance(loc[1], int):
        items = _field(data, str(loc[0]))
        code = None
        if isinstance(items, list | tuple) and loc[1] < len(items):
            code = _field(items[loc[1]], "code")
        what = f"{'state' if loc[0] == 'states' else 'action'} {code if code else f'#{loc[1] + 1}'!r}"
        return " ".join([what, ".".join(str(p) for p in loc[2:])]).strip()
    return ".".join(str(p) for p in loc) or "workflow"
