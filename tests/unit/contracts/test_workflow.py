"""Workflows as configuration: the shipped workflows' transitions, their interpretation, and load-time
checks that refuse a broken configuration with a message naming the workflow and the problem."""

import copy
import json
import re
from importlib import resources
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from mpp.contracts.calendar import Sla
from mpp.contracts.envelope import registered_events
from mpp.contracts.events.common import DurationUnit
from mpp.contracts.masterdata import Catalogue, load_demo_catalogue
from mpp.contracts.workflow import (
    ActorRole,
    ReasonRequired,
    RoleRefused,
    StateKind,
    TransitionRefused,
    UnknownState,
    Workflow,
    WorkflowError,
)

pytestmark = pytest.mark.unit

CATALOGUE = load_demo_catalogue()
CITIZEN, OFFICER, SUPERVISOR, OPERATOR = (
    ActorRole.CITIZEN,
    ActorRole.OFFICER,
    ActorRole.SUPERVISOR,
    ActorRole.OPERATOR,
)
ROLES = list(ActorRole)


def document() -> dict[str, Any]:
    text = (
        resources.files("mpp.contracts").joinpath("data", "demo_catalogue.json").read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


SHIPPED: list[dict[str, Any]] = document()["workflows"]


# The intended transitions of every shipped workflow, written out independently of the configuration:
# (action, from states, to state, roles that may take it).
Row = tuple[str, tuple[str, ...], str, frozenset[ActorRole]]
ONLY_OFFICER = frozenset({OFFICER})
ONLY_SUPERVISOR = frozenset({SUPERVISOR})
CITIZEN_OR_OFFICER = frozenset({CITIZEN, OFFICER})
OFFICER_OR_SUPERVISOR = frozenset({OFFICER, SUPERVISOR})


def document_rows(*middle: Row, hand_over: Row) -> set[Row]:
    return {
        ("verify", ("submitted",), "verified", ONLY_OFFICER),
        *middle,
        hand_over,
        ("return", ("submitted", "verified"), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "submitted", CITIZEN_OR_OFFICER),
        ("reject", ("submitted", "verified", "returned"), "rejected", ONLY_SUPERVISOR),
    }


TRANSITIONS: dict[str, set[Row]] = {
    "izin-usaha-sektor": {
        ("verify", ("submitted", "resubmitted"), "verified", ONLY_OFFICER),
        ("return", ("submitted", "resubmitted", "verified"), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "resubmitted", CITIZEN_OR_OFFICER),
        ("approve", ("verified",), "approved", ONLY_SUPERVISOR),
        ("issue", ("approved",), "permit_issued", OFFICER_OR_SUPERVISOR),
        ("reject", ("submitted", "resubmitted", "verified", "returned"), "rejected", ONLY_SUPERVISOR),
        ("revoke", ("permit_issued",), "revoked", ONLY_SUPERVISOR),
    },
    "pbg": {
        ("verify", ("submitted", "resubmitted"), "technical_review", ONLY_OFFICER),
        ("return", ("submitted", "resubmitted", "technical_review"), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "resubmitted", CITIZEN_OR_OFFICER),
        ("approve", ("technical_review",), "awaiting_payment", ONLY_SUPERVISOR),
        ("confirm_payment", ("awaiting_payment",), "payment_confirmed", ONLY_OFFICER),
        ("issue", ("payment_confirmed",), "permit_issued", ONLY_SUPERVISOR),
        (
            "reject",
            ("submitted", "resubmitted", "returned", "technical_review", "awaiting_payment"),
            "rejected",
            ONLY_SUPERVISOR,
        ),
        ("revoke", ("permit_issued",), "revoked", ONLY_SUPERVISOR),
    },
    "izin-penelitian": {
        ("verify", ("submitted", "resubmitted"), "verified", ONLY_OFFICER),
        ("return", ("submitted", "resubmitted", "verified"), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "resubmitted", CITIZEN_OR_OFFICER),
        ("issue", ("verified",), "issued", ONLY_SUPERVISOR),
        ("reject", ("submitted", "resubmitted", "verified", "returned"), "rejected", ONLY_SUPERVISOR),
    },
    "surat-keterangan": {
        ("verify", ("submitted",), "verified", ONLY_OFFICER),
        ("return", ("submitted",), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "submitted", CITIZEN_OR_OFFICER),
        ("issue", ("verified",), "issued", OFFICER_OR_SUPERVISOR),
        ("reject", ("submitted", "verified", "returned"), "rejected", ONLY_SUPERVISOR),
    },
    "ktp-el-perekaman": {
        ("record", ("submitted",), "recorded", ONLY_OFFICER),
        ("return", ("submitted",), "returned", ONLY_OFFICER),
        ("resubmit", ("returned",), "submitted", CITIZEN_OR_OFFICER),
        ("reject", ("submitted", "returned"), "rejected", ONLY_SUPERVISOR),
    },
    "ktp-el-pencetakan": document_rows(hand_over=("print", ("verified",), "issued", ONLY_OFFICER)),
    "ktp-el-penggantian": document_rows(hand_over=("print", ("verified",), "issued", ONLY_OFFICER)),
    "kk-baru": document_rows(hand_over=("issue", ("verified",), "issued", ONLY_OFFICER)),
    "kk-perubahan": document_rows(
        ("update_members", ("verified",), "members_updated", ONLY_OFFICER),
        hand_over=("issue", ("members_updated",), "issued", ONLY_OFFICER),
    ),
    "akta-kelahiran": document_rows(
        ("register", ("verified",), "registered", ONLY_OFFICER),
        hand_over=("sign", ("registered",), "issued", ONLY_SUPERVISOR),
    ),
}

LICENSING_EVENTS: dict[str, str | None] = {
    "verify": "ApplicationVerified",
    "return": "ApplicationReturned",
    "resubmit": "ApplicationResubmitted",
    "approve": "ApplicationApproved",
    "issue": "PermitIssued",
    "reject": "ApplicationRejected",
    "revoke": "PermitRevoked",
}
DOCUMENT_EVENTS: dict[str, str | None] = {
    "verify": None,
    "return": "DocumentApplicationReturned",
    "resubmit": None,
    "reject": "DocumentApplicationRejected",
}
EMITS: dict[str, dict[str, str | None]] = {
    "izin-usaha-sektor": LICENSING_EVENTS,
    "pbg": LICENSING_EVENTS | {"confirm_payment": None},
    "izin-penelitian": {k: v for k, v in LICENSING_EVENTS.items() if k not in ("approve", "revoke")},
    "surat-keterangan": {k: v for k, v in LICENSING_EVENTS.items() if k not in ("approve", "revoke")},
    "ktp-el-perekaman": {k: v for k, v in DOCUMENT_EVENTS.items() if k != "verify"} | {"record": None},
    "ktp-el-pencetakan": DOCUMENT_EVENTS | {"print": "DocumentIssued"},
    "ktp-el-penggantian": DOCUMENT_EVENTS | {"print": "DocumentIssued"},
    "kk-baru": DOCUMENT_EVENTS | {"issue": "DocumentIssued"},
    "kk-perubahan": DOCUMENT_EVENTS | {"update_members": None, "issue": "DocumentIssued"},
    "akta-kelahiran": DOCUMENT_EVENTS | {"register": None, "sign": "DocumentIssued"},
}

SERVICE_WORKFLOWS = {
    "dpmptsp.izin-usaha-toko-swalayan": ("izin-usaha-sektor", Sla(value=10, unit=DurationUnit.WORKING_DAYS)),
    "dpmptsp.pbg": ("pbg", Sla(value=28, unit=DurationUnit.WORKING_DAYS)),
    "dpmptsp.izin-penelitian": ("izin-penelitian", Sla(value=3, unit=DurationUnit.WORKING_DAYS)),
    "dpmptsp.surat-keterangan": ("surat-keterangan", Sla(value=4, unit=DurationUnit.HOURS)),
    "disdukcapil.ktp-el-rekam": ("ktp-el-perekaman", Sla(value=30, unit=DurationUnit.MINUTES)),
    "disdukcapil.ktp-el-cetak": ("ktp-el-pencetakan", Sla(value=1, unit=DurationUnit.WORKING_DAYS)),
    "disdukcapil.ktp-el-ganti": ("ktp-el-penggantian", Sla(value=1, unit=DurationUnit.WORKING_DAYS)),
    "disdukcapil.kk": ("kk-baru", Sla(value=1, unit=DurationUnit.WORKING_DAYS)),
    "disdukcapil.kk-perubahan": ("kk-perubahan", Sla(value=1, unit=DurationUnit.WORKING_DAYS)),
    "disdukcapil.akta-kelahiran": ("akta-kelahiran", Sla(value=1, unit=DurationUnit.WORKING_DAYS)),
}


def outcome(workflow: Workflow, state: str, action: str, role: ActorRole) -> str:
    """The next state, or the name of the refusal."""
    try:
        return workflow.apply(state, action, [role], reason="Alasan pengujian").to_state
    except WorkflowError as exc:
        return type(exc).__name__


def expected_outcome(workflow: str, state: str, action: str, role: ActorRole) -> str:
    row = next((r for r in TRANSITIONS[workflow] if r[0] == action and state in r[1]), None)
    if row is None:
        return "TransitionRefused"
    return row[2] if role in row[3] else "RoleRefused"


CASES = [(w.code, s.code, a.code) for w in CATALOGUE.workflows for s in w.states for a in w.actions]


class TestShippedWorkflows:
    def test_every_workflow_asked_for_is_shipped(self) -> None:
        assert {w.code for w in CATALOGUE.workflows} == set(TRANSITIONS)

    @pytest.mark.parametrize("code", sorted(TRANSITIONS))
    def test_the_configuration_has_exactly_the_intended_transitions(self, code: str) -> None:
        workflow = CATALOGUE.workflow(code)

        assert {
            (a.code, a.from_states, a.to_state, frozenset(a.roles)) for a in workflow.actions
        } == TRANSITIONS[code]

    @pytest.mark.parametrize(("code", "state", "action"), CASES)
    def test_each_action_in_each_state_for_each_role(self, code: str, state: str, action: str) -> None:
        workflow = CATALOGUE.workflow(code)

        assert {role: outcome(workflow, state, action, role) for role in ROLES} == {
            role: expected_outcome(code, state, action, role) for role in ROLES
        }

    @pytest.mark.parametrize("code", sorted(EMITS))
    def test_actions_map_to_contract_events(self, code: str) -> None:
        assert {a.code: a.emits for a in CATALOGUE.workflow(code).actions} == EMITS[code]

    @pytest.mark.parametrize("code", sorted(TRANSITIONS))
    def test_returning_rejecting_and_revoking_need_a_reason(self, code: str) -> None:
        needs_reason = {a.code for a in CATALOGUE.workflow(code).actions if a.requires_reason}

        assert needs_reason == {"return", "reject", "revoke"} & {
            a.code for a in CATALOGUE.workflow(code).actions
        }

    @pytest.mark.parametrize("service", sorted(SERVICE_WORKFLOWS))
    def test_service_types_follow_their_workflow_and_its_sla(self, service: str) -> None:
        workflow = CATALOGUE.service_workflow(service)

        assert workflow is not None
        assert (workflow.code, workflow.total_sla) == SERVICE_WORKFLOWS[service]

    def test_a_counter_service_has_no_workflow(self) -> None:
        assert CATALOGUE.service_workflow("polres.skck") is None

    def test_pbg_takes_28_working_days_with_a_technical_review(self) -> None:
        pbg = CATALOGUE.workflow("pbg")

        assert pbg.total_sla.describe() == "28 hari kerja"
        assert pbg.state("technical_review").label == "Pemeriksaan standar teknis oleh TPA/TPT"

    def test_the_same_day_letter_is_limited_in_hours(self) -> None:
        letter = CATALOGUE.workflow("surat-keterangan")

        assert letter.total_sla.describe() == "4 jam"
        assert letter.state("verified").sla == Sla(value=3, unit=DurationUnit.HOURS)

    @pytest.mark.parametrize(
        ("code", "running"),
        [
            ("izin-usaha-sektor", {"submitted", "resubmitted", "verified", "approved"}),
            ("pbg", {"submitted", "resubmitted", "technical_review", "payment_confirmed"}),
            ("izin-penelitian", {"submitted", "resubmitted", "verified"}),
            ("surat-keterangan", {"submitted", "verified"}),
            ("ktp-el-perekaman", {"submitted"}),
            ("akta-kelahiran", {"submitted", "verified", "registered"}),
        ],
    )
    def test_the_clock_runs_only_while_the_agency_holds_the_application(
        self, code: str, running: set[str]
    ) -> None:
        workflow = CATALOGUE.workflow(code)

        assert {s.code for s in workflow.states if workflow.clock_runs_in(s.code)} == running

    def test_an_issued_permit_is_finished_but_can_be_revoked(self) -> None:
        permit = CATALOGUE.workflow("izin-usaha-sektor")

        assert permit.state("permit_issued").kind is StateKind.COMPLETED
        assert permit.is_finished("permit_issued")
        assert [a.code for a in permit.allowed_actions("permit_issued", [SUPERVISOR])] == ["revoke"]


class TestLifecycle:
    def test_a_sector_permit_is_returned_resubmitted_approved_issued_and_revoked(self) -> None:
        permit = CATALOGUE.workflow("izin-usaha-sektor")
        steps = [
            ("verify", OFFICER),
            ("return", OFFICER),
            ("resubmit", CITIZEN),
            ("verify", OFFICER),
            ("approve", SUPERVISOR),
            ("issue", OFFICER),
            ("revoke", SUPERVISOR),
        ]
        state, visited = permit.initial_state.code, []
        for action, role in steps:
            state = permit.apply(state, action, [role], reason="Dokumen tidak sesuai").to_state
            visited.append(state)

        assert visited == [
            "verified",
            "returned",
            "resubmitted",
            "verified",
            "approved",
            "permit_issued",
            "revoked",
        ]

    def test_a_pbg_waits_for_the_retribution_before_it_is_issued(self) -> None:
        pbg = CATALOGUE.workflow("pbg")
        state = pbg.initial_state.code
        for action, role in [
            ("verify", OFFICER),
            ("approve", SUPERVISOR),
            ("confirm_payment", OFFICER),
            ("issue", SUPERVISOR),
        ]:
            state = pbg.apply(state, action, [role]).to_state

        assert state == "permit_issued"


class TestInterpretation:
    def test_lists_what_each_role_may_do(self) -> None:
        permit = CATALOGUE.workflow("izin-usaha-sektor")

        assert [a.code for a in permit.allowed_actions("verified", [OFFICER])] == ["return"]
        assert [a.code for a in permit.allowed_actions("verified", [SUPERVISOR])] == ["approve", "reject"]
        assert [a.code for a in permit.allowed_actions("verified", [OFFICER, SUPERVISOR])] == [
            "return",
            "approve",
            "reject",
        ]

    def test_roles_may_be_plain_strings(self) -> None:
        permit = CATALOGUE.workflow("izin-usaha-sektor")

        assert [a.code for a in permit.allowed_actions("submitted", ["officer"])] == ["verify", "return"]

    def test_an_operator_takes_no_action_in_the_shipped_workflows(self) -> None:
        assert all(w.allowed_actions(s.code, [OPERATOR]) == [] for w in CATALOGUE.workflows for s in w.states)

    def test_an_action_not_allowed_in_the_state_is_refused_with_the_allowed_ones(self) -> None:
        permit = CATALOGUE.workflow("izin-usaha-sektor")

        with pytest.raises(TransitionRefused) as refused:
            permit.apply("submitted", "approve", [OFFICER])

        assert (refused.value.state, refused.value.action, refused.value.allowed) == (
            "submitted",
            "approve",
            ["verify", "return"],
        )
        assert (
            str(refused.value)
            == "action 'approve' is not allowed in state 'submitted'; allowed: verify, return"
        )
        assert isinstance(refused.value, ValueError)

    def test_an_unknown_action_is_refused_like_a_wrong_one(self) -> None:
        with pytest.raises(TransitionRefused, match="allowed: none"):
            CATALOGUE.workflow("pbg").apply("rejected", "approve", [SUPERVISOR])

    def test_a_role_that_may_not_take_the_action_is_refused(self) -> None:
        with pytest.raises(
            RoleRefused, match=re.escape("needs one of the roles supervisor; the caller has officer")
        ):
            CATALOGUE.workflow("pbg").apply("technical_review", "approve", [OFFICER])

    def test_a_rejection_without_a_reason_is_refused(self) -> None:
        with pytest.raises(ReasonRequired, match="'reject' needs a reason"):
            CATALOGUE.workflow("pbg").apply("submitted", "reject", [SUPERVISOR], reason="  ")

    def test_an_unknown_state_is_an_error(self) -> None:
        with pytest.raises(UnknownState, match="workflow 'pbg' has no state 'approved'"):
            CATALOGUE.workflow("pbg").allowed_actions("approved", [SUPERVISOR])


class TestCatalogueReferences:
    def test_a_service_type_naming_an_unknown_workflow_is_refused(self) -> None:
        doc = document()
        doc["service_types"][0]["workflow"] = "perekaman"

        with pytest.raises(
            ValidationError, match=re.escape("disdukcapil.ktp-el-rekam: unknown workflow perekaman")
        ):
            Catalogue.model_validate(doc)

    def test_a_workflow_whose_sla_differs_from_the_published_standard_is_refused(self) -> None:
        doc = document()
        doc["service_types"][0]["workflow"] = "pbg"

        with pytest.raises(
            ValidationError, match="its standard promises 30 menit but workflow pbg takes 28 hari kerja"
        ):
            Catalogue.model_validate(doc)

    def test_duplicate_workflow_codes_are_refused(self) -> None:
        doc = document()
        doc["workflows"].append(doc["workflows"][0])

        with pytest.raises(ValidationError, match="duplicate workflow codes: izin-usaha-sektor"):
            Catalogue.model_validate(doc)

    def test_a_broken_workflow_is_named_in_the_catalogue_error(self) -> None:
        doc = document()
        doc["workflows"][1]["actions"][3]["to_state"] = "aproved"

        with pytest.raises(
            ValidationError,
            match=re.escape("workflow 'pbg': action 'approve' goes to unknown state 'aproved'"),
        ):
            Catalogue.model_validate(doc)


# Load-time checks, property-based: random valid workflows load, random breakages are refused.

KINDS_AFTER_START = [StateKind.ACTIVE, StateKind.PAUSED, StateKind.COMPLETED, StateKind.FINAL]
EVENT_TYPES = sorted({c.event_type for c in registered_events()})


@st.composite
def valid_workflows(draw: st.DrawFn) -> dict[str, Any]:
    """A random well-formed workflow: a spanning tree from the initial state, an exit from every state
    that needs one, and every paused state in clock_pauses_in."""
    kinds = [StateKind.INITIAL, *draw(st.lists(st.sampled_from(KINDS_AFTER_START), min_size=1, max_size=7))]
    kinds.append(StateKind.FINAL)
    codes = [f"s{i}" for i in range(len(kinds))]
    actions: list[dict[str, Any]] = []

    def action(source: str, target: str) -> None:
        actions.append(
            {
                "code": f"a{len(actions)}",
                "label": f"Aksi {len(actions)}",
                "from_states": [source],
                "to_state": target,
                "roles": draw(
                    st.lists(st.sampled_from([r.value for r in ActorRole]), min_size=1, unique=True)
                ),
                "requires_reason": draw(st.booleans()),
                "emits": draw(st.none() | st.sampled_from(EVENT_TYPES)),
            }
        )

    for i in range(1, len(kinds)):
        parents = [j for j in range(i) if kinds[j] is not StateKind.FINAL]
        action(codes[draw(st.sampled_from(parents))], codes[i])
    for i, kind in enumerate(kinds):
        if kind is not StateKind.FINAL:
            action(codes[i], codes[-1])
    unit = draw(st.sampled_from(list(DurationUnit)))
    return {
        "code": draw(st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)),
        "name": "Alur uji",
        "states": [
            {"code": code, "label": f"Status {code}", "kind": kind.value}
            for code, kind in zip(codes, kinds, strict=True)
        ],
        "actions": actions,
        "total_sla": {"value": draw(st.integers(1, 100)), "unit": unit.value},
        "clock_pauses_in": [c for c, k in zip(codes, kinds, strict=True) if k is StateKind.PAUSED],
    }


WORKFLOWS = st.one_of(st.sampled_from(SHIPPED), valid_workflows()).map(copy.deepcopy)
NEW_CODES = st.from_regex(r"zz[a-z]{1,10}", fullmatch=True)


def refusal(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as refused:
        Workflow.model_validate(doc)
    message = str(refused.value.errors()[0]["msg"])
    assert f"workflow {doc['code']!r}: " in message
    return message


def initial_code(doc: dict[str, Any]) -> str:
    return next(str(s["code"]) for s in doc["states"] if s["kind"] == "initial")


class TestLoadingConfiguration:
    @settings(deadline=None)
    @given(doc=WORKFLOWS)
    def test_a_valid_workflow_loads(self, doc: dict[str, Any]) -> None:
        workflow = Workflow.model_validate(doc)

        assert [s.code for s in workflow.states] == [s["code"] for s in doc["states"]]
        assert all(
            workflow.allowed_actions(s.code, ROLES) == list(workflow.actions_from(s.code))
            for s in workflow.states
        )

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_dropping_a_state_is_refused(self, doc: dict[str, Any], data: st.DataObject) -> None:
        dropped = doc["states"].pop(data.draw(st.integers(0, len(doc["states"]) - 1)))

        message = refusal(doc)

        assert (
            "no initial state" if dropped["kind"] == "initial" else f"unknown state {dropped['code']!r}"
        ) in message

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data(), target=NEW_CODES)
    def test_retargeting_an_action_to_an_unknown_state_is_refused(
        self, doc: dict[str, Any], data: st.DataObject, target: str
    ) -> None:
        action = data.draw(st.sampled_from(doc["actions"]))
        action["to_state"] = target

        assert f"action {action['code']!r} goes to unknown state {target!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data(), source=NEW_CODES)
    def test_an_action_from_an_unknown_state_is_refused(
        self, doc: dict[str, Any], data: st.DataObject, source: str
    ) -> None:
        action = data.draw(st.sampled_from(doc["actions"]))
        action["from_states"] = [*action["from_states"], source]

        assert f"action {action['code']!r} starts from unknown state {source!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_a_duplicate_state_code_is_refused(self, doc: dict[str, Any], data: st.DataObject) -> None:
        state = data.draw(st.sampled_from(doc["states"]))
        doc["states"].append(copy.deepcopy(state))

        assert f"duplicate state code {state['code']!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_a_duplicate_action_code_is_refused(self, doc: dict[str, Any], data: st.DataObject) -> None:
        action = data.draw(st.sampled_from(doc["actions"]))
        doc["actions"].append(copy.deepcopy(action))

        assert f"duplicate action code {action['code']!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS)
    def test_a_workflow_without_an_initial_state_is_refused(self, doc: dict[str, Any]) -> None:
        next(s for s in doc["states"] if s["kind"] == "initial")["kind"] = "active"

        assert "no initial state" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_a_second_initial_state_is_refused(self, doc: dict[str, Any], data: st.DataObject) -> None:
        others = [s for s in doc["states"] if s["kind"] != "initial"]
        data.draw(st.sampled_from(others))["kind"] = "initial"

        assert "2 initial states" in refusal(doc)

    @settings(deadline=None)
    @given(
        doc=WORKFLOWS,
        data=st.data(),
        role=st.text(min_size=1, max_size=12).filter(lambda r: r not in {a.value for a in ActorRole}),
    )
    def test_an_unknown_role_is_refused(self, doc: dict[str, Any], data: st.DataObject, role: str) -> None:
        action = data.draw(st.sampled_from(doc["actions"]))
        action["roles"] = [*action["roles"], role]

        assert f"action {action['code']!r} names unknown role {role!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data(), event=st.from_regex(r"[A-Z][a-zA-Z]{0,20}", fullmatch=True))
    def test_an_action_emitting_an_unknown_event_is_refused(
        self, doc: dict[str, Any], data: st.DataObject, event: str
    ) -> None:
        action = data.draw(st.sampled_from(doc["actions"]))
        action["emits"] = event + "Happened"

        assert f"action {action['code']!r} emits unknown event type {event + 'Happened'!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_an_action_out_of_a_final_state_is_refused(
        self, doc: dict[str, Any], data: st.DataObject
    ) -> None:
        final = data.draw(st.sampled_from([s for s in doc["states"] if s["kind"] == "final"]))
        action = data.draw(st.sampled_from(doc["actions"]))
        action["from_states"] = [*action["from_states"], final["code"]]

        assert f"final state {final['code']!r} has outgoing action {action['code']!r}" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_a_dead_end_that_is_not_final_is_refused(self, doc: dict[str, Any], data: st.DataObject) -> None:
        state = data.draw(st.sampled_from([s for s in doc["states"] if s["kind"] == "final"]))
        state["kind"] = "active"

        assert f"state {state['code']!r} has no outgoing action" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS, orphan=NEW_CODES)
    def test_an_unreachable_state_is_refused(self, doc: dict[str, Any], orphan: str) -> None:
        final = next(s["code"] for s in doc["states"] if s["kind"] == "final")
        doc["states"].append({"code": orphan, "label": "Yatim", "kind": "active"})
        doc["actions"].append(
            {
                "code": orphan,
                "label": "Keluar",
                "from_states": [orphan],
                "to_state": final,
                "roles": ["officer"],
            }
        )

        assert f"state {orphan!r} is not reachable from the initial state {initial_code(doc)!r}" in refusal(
            doc
        )

    @settings(deadline=None)
    @given(doc=WORKFLOWS, data=st.data())
    def test_a_paused_state_where_the_clock_runs_is_refused(
        self, doc: dict[str, Any], data: st.DataObject
    ) -> None:
        paused = [s["code"] for s in doc["states"] if s["kind"] == "paused"]
        assume(paused)
        running = data.draw(st.sampled_from(paused))
        doc["clock_pauses_in"] = [c for c in doc["clock_pauses_in"] if c != running]

        assert f"paused state {running!r} is missing from clock_pauses_in" in refusal(doc)

    @settings(deadline=None)
    @given(doc=WORKFLOWS)
    def test_pausing_the_clock_in_the_initial_state_is_refused(self, doc: dict[str, Any]) -> None:
        doc["clock_pauses_in"] = [*doc["clock_pauses_in"], initial_code(doc)]

        assert f"the clock cannot pause in initial state {initial_code(doc)!r}" in refusal(doc)

    def test_a_loop_with_no_way_out_is_refused(self) -> None:
        doc = {
            "code": "lingkaran",
            "name": "Alur tanpa akhir",
            "states": [
                {"code": "a", "label": "A", "kind": "initial"},
                {"code": "b", "label": "B", "kind": "active"},
            ],
            "actions": [
                {"code": "ab", "label": "Ke B", "from_states": ["a"], "to_state": "b", "roles": ["officer"]},
                {"code": "ba", "label": "Ke A", "from_states": ["b"], "to_state": "a", "roles": ["officer"]},
            ],
            "total_sla": {"value": 1, "unit": "working_days"},
        }

        assert "state 'a' can reach no completed or final state" in refusal(doc)

    def test_a_final_state_with_an_sla_is_refused(self) -> None:
        doc = copy.deepcopy(SHIPPED[0])
        next(s for s in doc["states"] if s["code"] == "rejected")["sla"] = {
            "value": 1,
            "unit": "working_days",
        }

        assert "final state 'rejected' cannot have an SLA" in refusal(doc)

    def test_a_state_allowed_longer_than_the_whole_process_is_refused(self) -> None:
        doc = copy.deepcopy(SHIPPED[0])
        doc["states"][0]["sla"] = {"value": 11, "unit": "working_days"}

        assert (
            "state 'submitted' allows 11 hari kerja, more than the whole process (10 hari kerja)"
            in refusal(doc)
        )

    def test_a_malformed_field_is_named_by_its_state(self) -> None:
        doc = copy.deepcopy(SHIPPED[0])
        doc["states"][2]["kind"] = "waiting"

        assert "state 'returned' kind: Input should be" in refusal(doc)
