"""The monthly report of one MPP against figures computed by hand from a small set of events: the month's
local days only, IKM per unsur with grades, SLA per service type, complaints, visitors by day; the same
report as page, JSON and XLSX; provisional while the month runs; 404, 422 and 403 with messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mpp.contracts.envelope import Envelope, EventPayload
from mpp.contracts.events.common import Channel, ComplaintChannel, PriorityGroup
from mpp.contracts.events.licensing import PermitIssuedV1
from mpp.contracts.events.queue import (
    ComplaintReceivedV1,
    ComplaintRespondedV1,
    ServiceCompletedV1,
    SkmScores,
    SurveySubmittedV1,
    TicketCalledV1,
    TicketIssuedV1,
    VisitStartedV1,
)
from mpp.contracts.examples import example_payload
from mpp.kit.auth import Role
from tests.integration.reporting.harness import SITE, ReportingApi, bearer, ministry, officer, operator
from tests.support.exports import as_csv_text, read_csv, read_xlsx

pytestmark = pytest.mark.integration

WIB = ZoneInfo("Asia/Jakarta")
SERVICE = "dpmptsp.pbg"


def wib(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=WIB).astimezone(UTC)


def _env(payload: EventPayload, producer: str = "mpp.queue", subject: str = "vis-1") -> Envelope:
    return Envelope.wrap(payload, producer=producer, agency="dpmptsp", site=SITE, subject=subject)


def _visit(n: int, at: datetime, channel: Channel) -> Envelope:
    return _env(VisitStartedV1(visit_id=f"vis-{n}", channel=channel, started_at=at))


def _ticket(n: int, at: datetime, channel: Channel, waiting: int, service: int | None) -> list[Envelope]:
    common: dict[str, Any] = {
        "visit_id": f"vis-{n}",
        "ticket_id": f"tik-{n}",
        "ticket_number": f"A-{n:03d}",
        "service_type": SERVICE,
        "agency": "dpmptsp",
    }
    called_at = at + timedelta(seconds=waiting)
    out = [
        _env(TicketIssuedV1(**common, channel=channel, issued_at=at, priority_group=PriorityGroup.NONE)),
        _env(
            TicketCalledV1(
                **common,
                counter="loket-01",
                officer_ref="pet-1",
                called_at=called_at,
                waiting_seconds=waiting,
            )
        ),
    ]
    if service is not None:
        done = example_payload(ServiceCompletedV1).model_copy(
            update={
                **common,
                "priority_group": PriorityGroup.NONE,
                "channel": channel,
                "issued_at": at,
                "completed_at": called_at + timedelta(seconds=service),
                "waiting_seconds": waiting,
                "service_seconds": service,
                "total_seconds": waiting + service,
            }
        )
        out.append(_env(done))
    return out


def _survey(n: int, at: datetime, score: int, u9: int | None) -> Envelope:
    scores = {f"u{i}": score for i in range(1, 9)} | {"u9": u9}
    payload = example_payload(SurveySubmittedV1).model_copy(
        update={
            "survey_id": f"skm-{n}",
            "service_type": SERVICE,
            "agency": "dpmptsp",
            "scores": SkmScores(**scores),
            "submitted_at": at,
        }
    )
    return _env(payload)


def _permit(n: int, at: datetime, within: bool) -> Envelope:
    payload = example_payload(PermitIssuedV1).model_copy(
        update={
            "application_id": f"lic-2026-{n:06d}",
            "issued_at": at,
            "submitted_at": at - timedelta(days=3),
            "within_sla": within,
        }
    )
    return _env(payload, producer="mpp.licensing", subject=f"lic-{n}")


def _complaint(n: str, at: datetime, channel: ComplaintChannel) -> Envelope:
    payload = example_payload(ComplaintReceivedV1).model_copy(
        update={"complaint_id": n, "channel": channel, "received_at": at}
    )
    return _env(payload, subject=n)


def _response(n: str, received: datetime, at: datetime) -> Envelope:
    payload = example_payload(ComplaintRespondedV1).model_copy(
        update={
            "complaint_id": n,
            "received_at": received,
            "responded_at": at,
            "working_days_elapsed": 2,
            "within_limit": True,
        }
    )
    return _env(payload, subject=n)


@pytest.fixture
async def api(reporting: ReportingApi) -> ReportingApi:
    await reporting.project(
        [
            _visit(1, wib(2, 8), Channel.WALK_IN),
            _visit(2, wib(2, 9), Channel.ONLINE),
            _visit(3, wib(31, 23, 30), Channel.WALK_IN),  # the month's last local day
            _visit(4, wib(1, 0, 30, month=4), Channel.WALK_IN),  # 31 March in UTC, April in WIB
            _visit(5, wib(28, 10, month=2), Channel.WALK_IN),
            *_ticket(1, wib(2, 8, 5), Channel.WALK_IN, 120, 600),
            *_ticket(2, wib(2, 9, 5), Channel.ONLINE, 300, None),
            *_ticket(4, wib(1, 9, month=4), Channel.WALK_IN, 3000, 60),
            _survey(1, wib(2, 9), 4, None),
            _survey(2, wib(2, 10), 3, 3),
            _survey(3, wib(1, 10, month=4), 1, 1),
            _complaint("adu-1", wib(3, 9), ComplaintChannel.SP4N_LAPOR),
            _complaint("adu-2", wib(3, 10), ComplaintChannel.WHATSAPP),
            _response("adu-1", wib(3, 9), wib(5, 9)),
            _permit(1, wib(10, 10), True),
            _permit(2, wib(11, 10), False),
            _permit(3, wib(2, 10, month=4), True),
        ]
    )
    return reporting


async def _report(api: ReportingApi, month: str = "2026-03", headers: dict[str, str] | None = None) -> Any:
    response = await api.client.get(f"/v1/reports/monthly/{SITE}/{month}", headers=headers or ministry())
    assert response.status_code == 200, response.text
    return response.json()


async def test_the_monthly_figures_equal_the_hand_computed_ones(api: ReportingApi) -> None:
    report = await _report(api)
    m = {k: v["figures"] for k, v in report["metrics"].items()}

    assert report["site"]["name"] == "Mal Pelayanan Publik Kota Sukamaju"
    assert (report["site"]["kabkota_name"], report["site"]["province_name"]) == (
        "Kota Sukamaju",
        "Jawa Barat",
    )
    assert (report["from"], report["to"], report["provisional"]) == ("2026-03-01", "2026-03-31", False)
    assert set(m) == {*(f"M{i}" for i in range(1, 11)), "D1", "D2", "D3"}
    # Visits on 2 March (walk-in, online) and 31 March 23:30 WIB; not 1 April 00:30 WIB nor February.
    assert (m["M3"]["visitors"], m["M3"]["visitors_walk_in"], m["M3"]["visitors_online"]) == (3, 2, 1)
    assert (m["M4"]["tickets_issued"], m["M4"]["tickets_served"]) == (2, 1)
    assert m["M8"]["tickets_online_pct"] == 50.0
    # Waiting 120 s and 300 s: nearest-rank median 120, P90 300, each reported at its bucket's upper end.
    assert (m["D1"]["count"], m["D1"]["median_seconds"], m["D1"]["p90_seconds"]) == (2, 129, 309)
    assert m["D1"]["mean_seconds"] == 210.0
    assert (m["D2"]["count"], m["D2"]["median_seconds"], m["D2"]["mean_seconds"]) == (1, 609, 600.0)
    # IKM: U1-U8 answered 4 and 3 (NRR 3.5, index 87.50), U9 answered 3 once (NRR 3, index 75.00);
    # IKM = 25 x (8 x 3.5 + 3) / 9 = 86.11 -> B.
    assert (m["M6"]["respondents"], m["M6"]["ikm"], m["M6"]["grade"]) == (2, 86.11, "B")
    assert m["M6"]["weakest_element"] == "U9"
    assert (m["M5"]["applications_finished"], m["M5"]["applications_within_sla"]) == (2, 1)
    assert m["M5"]["sla_compliance_pct"] == 50.0
    assert m["M10"]["permits_issued"] == 2
    assert (m["M7"]["received"], m["M7"]["responded"], m["M7"]["followed_up_pct"]) == (2, 1, 50.0)
    assert (m["M7"]["response_within_limit_pct"], m["M7"]["mean_response_working_days"]) == (100.0, 2.0)
    assert m["M7"]["by_channel"] == {"sp4n_lapor": 1, "whatsapp": 1}

    assert report["sla_by_service_type"] == [{"service_type": SERVICE, "figures": m["M5"]}]
    days = {d["day"]: d["visitors"] for d in report["visitors_by_day"]}
    assert len(days) == 31
    assert {d: v for d, v in days.items() if v} == {"2026-03-02": 2, "2026-03-31": 1}


async def test_sections_ikm_per_unsur_with_grades_sla_complaints_and_days(api: ReportingApi) -> None:
    report = await _report(api)
    sections = {s["title"]: s for s in report["sections"]}

    assert list(sections) == [
        "Ringkasan metrik",
        "IKM per unsur",
        "SLA per jenis layanan",
        "Pengaduan dan batas waktu",
        "Pengunjung per hari",
    ]
    ikm = [r[:1] + r[2:] for r in sections["IKM per unsur"]["rows"]]
    assert ikm == [
        *([f"U{i}", 2, 7, 87.5, "B"] for i in range(1, 9)),
        ["U9", 1, 3, 75.0, "C"],
        ["IKM", 2, None, 86.11, "B"],
    ]
    (sla,) = sections["SLA per jenis layanan"]["rows"]
    columns = [c["header"] for c in sections["SLA per jenis layanan"]["columns"]]
    assert sla[columns.index("Jenis layanan")] == SERVICE
    assert sla[columns.index("Nama")] == "Persetujuan Bangunan Gedung (PBG)"
    assert sla[columns.index("Kepatuhan SLA (%)")] == 50.0
    complaints = {r[0]: r for r in sections["Pengaduan dan batas waktu"]["rows"]}
    assert complaints["Tanggapan pertama"][1:] == ["3 hari kerja", 1, 1, 100.0, 2.0]
    assert complaints["Kanal: SP4N-LAPOR!"][2] == 1
    visitors = sections["Pengunjung per hari"]["rows"]
    assert visitors[1] == ["2026-03-02", "Senin", 2, 1, 1, 0]
    summary = sections["Ringkasan metrik"]["rows"]
    assert ["M3", "Pengunjung", "Pengunjung", 3, "visitors"] in summary


async def test_the_xlsx_has_one_sheet_per_section_with_the_same_cells(api: ReportingApi) -> None:
    report = await _report(api)
    response = await api.client.get(f"/v1/reports/monthly/{SITE}/2026-03.xlsx", headers=operator())

    assert response.status_code == 200
    assert response.headers["content-disposition"] == (
        f'attachment; filename="laporan-bulanan_{SITE}_2026-03.xlsx"'
    )
    sheets = read_xlsx(response.content)
    assert list(sheets) == [s["title"] for s in report["sections"]]
    for section in report["sections"]:
        head, *rows = sheets[section["title"]]
        assert head == [c["header"] for c in section["columns"]]
        assert rows == section["rows"]


async def test_the_csv_holds_every_cell_of_every_section(api: ReportingApi) -> None:
    report = await _report(api)
    response = await api.client.get(f"/v1/reports/monthly/{SITE}/2026-03.csv", headers=ministry())

    assert response.status_code == 200
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="laporan-bulanan_{SITE}_2026-03.csv"'
    )
    head, *rows = read_csv(response.content)
    assert head == ["Bagian", "Baris", "Kolom", "Nilai"]
    expected = [
        [section["title"], str(n), column["header"], as_csv_text(value)]
        for section in report["sections"]
        for n, row in enumerate(section["rows"], start=1)
        for column, value in zip(section["columns"], row, strict=True)
    ]
    assert rows == expected
    assert ["IKM per unsur", "10", "Indeks (25 x NRR)", "86.11"] in rows


async def test_the_printable_page_names_the_mpp_and_the_month(api: ReportingApi) -> None:
    response = await api.client.get(f"/laporan/bulanan/{SITE}/2026-03", headers=ministry())

    assert response.status_code == 200
    page = response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for text in ("Mal Pelayanan Publik Kota Sukamaju", "Kota Sukamaju", "Jawa Barat", "Maret 2026"):
        assert text in page
    assert "@page { size: A4" in page
    assert "86,11" in page
    assert "SEMENTARA" not in page
    for metric in (*(f"M{i}" for i in range(1, 11)), "D1", "D2", "D3"):
        assert f'id="{metric}"' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert f'href="/laporan/bulanan/{SITE}/2026-03.xlsx"' in page
    assert f'href="/laporan/bulanan/{SITE}/2026-03.csv"' in page


async def test_a_month_not_over_yet_is_provisional(api: ReportingApi) -> None:
    today = datetime.now(WIB).date()
    month = f"{today.year}-{today.month:02d}"
    report = await _report(api, month)
    page = await api.client.get(f"/laporan/bulanan/{SITE}/{month}", headers=operator())
    xlsx = await api.client.get(f"/v1/reports/monthly/{SITE}/{month}.xlsx", headers=ministry())

    assert report["provisional"] is True
    assert "SEMENTARA" in page.text
    assert "_sementara.xlsx" in xlsx.headers["content-disposition"]


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v1/reports/monthly/mpp-tidak-ada/2026-03", 404, "MPP tidak dikenal"),
        ("/laporan/bulanan/mpp-tidak-ada/2026-03", 404, "MPP tidak dikenal"),
        (f"/v1/reports/monthly/{SITE}/2026-13", 422, "TTTT-BB"),
        (f"/v1/reports/monthly/{SITE}/2026-3", 422, "TTTT-BB"),
        (f"/laporan/bulanan/{SITE}/maret.xlsx", 422, "TTTT-BB"),
    ],
)
async def test_unknown_sites_and_bad_months(api: ReportingApi, path: str, status: int, message: str) -> None:
    response = await api.client.get(path, headers=ministry())

    assert response.status_code == status
    if path.startswith("/laporan/"):  # the page's routes answer with an Indonesian HTML page
        assert response.headers["content-type"].startswith("text/html")
        assert message in response.text
    else:
        assert message in response.json()["error"]["message"]


async def test_agency_staff_and_other_sites_are_refused(api: ReportingApi) -> None:
    staff = await api.client.get(f"/v1/reports/monthly/{SITE}/2026-03", headers=officer("dpmptsp"))
    foreign = await api.client.get(
        f"/laporan/bulanan/{SITE}/2026-03", headers=operator("mpp-kota-balikpapan")
    )
    citizen = await api.client.get(
        f"/v1/reports/monthly/{SITE}/2026-03", headers=bearer(roles=[Role.CITIZEN])
    )

    assert (staff.status_code, foreign.status_code, citizen.status_code) == (403, 403, 403)
    assert foreign.headers["content-type"].startswith("text/html")
    assert "MPP Anda sendiri" in foreign.text
