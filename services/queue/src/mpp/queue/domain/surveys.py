"""SKM (Survei Kepuasan Masyarakat, PermenPANRB 14/2017): one anonymous questionnaire per completed service.

When an officer completes a ticket, the service records a survey *invitation* keyed by a random token
handed to the citizen (on the completion answer and the public ticket page). The invitation can be
answered once, until the survey window closes. The answer itself is stored apart from the invitation,
with no ticket, visit, citizen or officer in it: the nine elements (unsur) by code, each 1 to 4, and the
respondent's anonymous profile.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mpp.contracts.events.common import SKM_ELEMENT_LABELS, AgeBand, Sex, SkmElement
from mpp.contracts.events.queue import Education, Occupation, SkmScores, SurveyChannel
from mpp.queue.domain.model import QueueError

SCALE_LABELS: dict[int, str] = {1: "Tidak baik", 2: "Kurang baik", 3: "Baik", 4: "Sangat baik"}
"""The four answers of every element, worst to best."""

QUESTIONS: dict[SkmElement, str] = {
    SkmElement.U1: "Bagaimana pendapat Anda tentang kesesuaian persyaratan pelayanan dengan jenis pelayanannya?",
    SkmElement.U2: "Bagaimana pemahaman Anda tentang kemudahan prosedur pelayanan di unit ini?",
    SkmElement.U3: "Bagaimana pendapat Anda tentang kecepatan waktu dalam memberikan pelayanan?",
    SkmElement.U4: "Bagaimana pendapat Anda tentang kewajaran biaya/tarif dalam pelayanan (gratis: sangat baik)?",
    SkmElement.U5: "Bagaimana pendapat Anda tentang kesesuaian produk pelayanan dengan standar pelayanan?",
    SkmElement.U6: "Bagaimana pendapat Anda tentang kompetensi/kemampuan petugas dalam pelayanan?",
    SkmElement.U7: "Bagaimana pendapat Anda tentang perilaku petugas dalam pelayanan (kesopanan dan keramahan)?",
    SkmElement.U8: "Bagaimana pendapat Anda tentang kualitas sarana dan prasarana?",
    SkmElement.U9: "Bagaimana pendapat Anda tentang penanganan pengaduan, saran, dan masukan?",
}

PROFILE_LABELS: dict[str, dict[str, str]] = {
    "sex": {Sex.MALE.value: "Laki-laki", Sex.FEMALE.value: "Perempuan"},
    "age_band": {
        AgeBand.UNDER_17.value: "Di bawah 17 tahun",
        AgeBand.FROM_17_TO_25.value: "17-25 tahun",
        AgeBand.FROM_26_TO_35.value: "26-35 tahun",
        AgeBand.FROM_36_TO_45.value: "36-45 tahun",
        AgeBand.FROM_46_TO_59.value: "46-59 tahun",
        AgeBand.SIXTY_PLUS.value: "60 tahun ke atas",
    },
    "education": {
        Education.NONE.value: "Tidak sekolah",
        Education.PRIMARY.value: "SD",
        Education.JUNIOR_SECONDARY.value: "SMP",
        Education.SENIOR_SECONDARY.value: "SMA/SMK",
        Education.DIPLOMA.value: "D1-D3",
        Education.BACHELOR.value: "D4/S1",
        Education.MASTER.value: "S2",
        Education.DOCTORATE.value: "S3",
    },
    "occupation": {
        Occupation.CIVIL_SERVANT.value: "PNS/ASN",
        Occupation.MILITARY_POLICE.value: "TNI/Polri",
        Occupation.PRIVATE_EMPLOYEE.value: "Pegawai swasta",
        Occupation.ENTREPRENEUR.value: "Wiraswasta/usahawan",
        Occupation.STUDENT.value: "Pelajar/mahasiswa",
        Occupation.HOMEMAKER.value: "Ibu rumah tangga",
        Occupation.FARMER_FISHER.value: "Petani/nelayan",
        Occupation.UNEMPLOYED.value: "Belum/tidak bekerja",
        Occupation.OTHER.value: "Lainnya",
    },
}
PROFILE_TITLES = {
    "sex": "Jenis kelamin",
    "age_band": "Usia",
    "education": "Pendidikan terakhir",
    "occupation": "Pekerjaan utama",
}


class SurveyError(QueueError):
    """A survey cannot be taken or its answers are not valid."""


class InvalidAnswers(SurveyError):
    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        super().__init__(f"invalid survey answers: {problems}")


class SurveyAlreadyAnswered(SurveyError):
    pass


class SurveyClosed(SurveyError):
    def __init__(self, closed_at: datetime) -> None:
        self.closed_at = closed_at
        super().__init__(f"survey window closed at {closed_at.isoformat()}")


class ServiceNotCompleted(SurveyError):
    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"the service is {state}, not completed")


def new_survey_token() -> str:
    """A random, unguessable token (128 bits) for the survey link."""
    return secrets.token_urlsafe(16)


@dataclass
class SurveyInvitation:
    """The right to answer one survey for one completed service."""

    token: str
    ticket_id: str
    site: str
    agency: str
    service_type: str
    completed_at: datetime
    closes_at: datetime
    answered_at: datetime | None = None

    @classmethod
    def after_completion(
        cls, *, ticket_id: str, site: str, agency: str, service_type: str, at: datetime, window: timedelta
    ) -> SurveyInvitation:
        return cls(
            token=new_survey_token(),
            ticket_id=ticket_id,
            site=site,
            agency=agency,
            service_type=service_type,
            completed_at=at,
            closes_at=at + window,
        )

    def state(self, now: datetime) -> str:
        """``open``, ``answered`` or ``closed``."""
        if self.answered_at is not None:
            return "answered"
        return "closed" if now > self.closes_at else "open"

    def ensure_open(self, now: datetime) -> None:
        if self.answered_at is not None:
            raise SurveyAlreadyAnswered(self.token)
        if now > self.closes_at:
            raise SurveyClosed(self.closes_at)


@dataclass(frozen=True)
class SurveyAnswers:
    scores: SkmScores
    sex: Sex | None = None
    age_band: AgeBand | None = None
    education: Education | None = None
    occupation: Occupation | None = None
    channel: SurveyChannel = SurveyChannel.ONLINE


def _score(value: Any) -> int | None:
    # A bool is an int in Python; "true" is not a score.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        return None
    return value


def parse_answers(
    scores: Mapping[str, Any], profile: Mapping[str, Any], channel: str = SurveyChannel.ONLINE.value
) -> SurveyAnswers:
    """Validate one questionnaire: element codes U1..U9 (any case) with whole scores 1..4, at least one
    answered (an element left out or null is unanswered), and the profile's optional choices.

    Every problem is reported at once, each with its field and a message in Bahasa Indonesia.
    """
    problems: list[dict[str, str]] = []
    known = {e.value: e for e in SkmElement}
    answered: dict[str, int] = {}
    for key, value in scores.items():
        element = known.get(str(key).upper())
        if element is None:
            problems.append({"field": f"scores.{key}", "problem": "Unsur SKM tidak dikenal (U1 sampai U9)"})
            continue
        if value is None:
            continue
        score = _score(value)
        if score is None:
            problems.append(
                {
                    "field": f"scores.{element.value}",
                    "problem": f"Nilai unsur '{SKM_ELEMENT_LABELS[element]}' harus 1, 2, 3 atau 4",
                }
            )
            continue
        answered[element.value.lower()] = score
    if not answered and not problems:
        problems.append({"field": "scores", "problem": "Isi penilaian untuk sedikitnya satu unsur"})
    chosen: dict[str, Any] = {}
    for key, value in profile.items():
        options = PROFILE_LABELS.get(key)
        if options is None:
            problems.append({"field": f"respondent.{key}", "problem": "Isian profil tidak dikenal"})
        elif value is not None and (not isinstance(value, str) or value not in options):
            problems.append(
                {"field": f"respondent.{key}", "problem": f"Pilihan '{PROFILE_TITLES[key]}' tidak dikenal"}
            )
        elif value is not None:
            chosen[key] = value
    if channel not in {c.value for c in SurveyChannel}:
        problems.append({"field": "channel", "problem": "Saluran survei tidak dikenal"})
    if problems:
        raise InvalidAnswers(problems)
    return SurveyAnswers(
        scores=SkmScores(**answered),
        sex=Sex(chosen["sex"]) if "sex" in chosen else None,
        age_band=AgeBand(chosen["age_band"]) if "age_band" in chosen else None,
        education=Education(chosen["education"]) if "education" in chosen else None,
        occupation=Occupation(chosen["occupation"]) if "occupation" in chosen else None,
        channel=SurveyChannel(channel),
    )


def questionnaire() -> dict[str, Any]:
    """The questionnaire's structure for a client: elements with their official names, scale, profile."""
    return {
        "elements": [
            {"code": e.value, "name": SKM_ELEMENT_LABELS[e], "question": QUESTIONS[e]} for e in SkmElement
        ],
        "scale": [{"value": v, "label": label} for v, label in SCALE_LABELS.items()],
        "respondent": {
            key: {
                "title": PROFILE_TITLES[key],
                "options": [{"value": v, "label": label} for v, label in options.items()],
            }
            for key, options in PROFILE_LABELS.items()
        },
    }
