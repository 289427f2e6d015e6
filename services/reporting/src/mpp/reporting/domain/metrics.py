"""The ministry's metric catalogue (M1-M10, D1-D3): definitions in Bahasa Indonesia and the formulas
that turn summed facts into figures.

Every figure is computed from additive totals (see :mod:`facts`) summed over the requested days,
sites, agencies and service types, so a figure of a week, a province or the nation is exactly the
figure of its summed parts: ratios are ratios of sums, the IKM is the index of summed unsur totals,
and percentiles come from merged histograms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from mpp.reporting.domain import ikm
from mpp.reporting.domain.facts import SERVICE, WAITING
from mpp.reporting.domain.percentiles import MAX_ERROR_SECONDS, percentiles

PRIORITY_GROUPS = ("lansia", "disabilitas", "ibu_hamil", "anak", "korban_bencana")
CHANNELS = ("walk_in", "online", "mpp_digital")
COMPLAINT_CHANNELS = (
    "sp4n_lapor",
    "counter",
    "suggestion_box",
    "whatsapp",
    "email",
    "phone",
    "website",
    "social_media",
    "mpp_digital",
)
COMPLAINT_CATEGORIES = (
    "requirements",
    "procedure",
    "service_time",
    "fees",
    "product",
    "staff_conduct",
    "facilities",
    "queue",
    "information",
    "illegal_levy",
    "other",
)


@dataclass(slots=True)
class Totals:
    """What one figure is computed from: summed measures, merged histograms and, for M1/M2, the
    hosted master data and the agencies and service types with activity."""

    measures: Counter[str] = field(default_factory=Counter)
    histograms: dict[str, Mapping[int, int]] = field(default_factory=dict)
    """Per duration kind, counts per bucket (a ``Counter``, or a ``BlockHistogram`` of the per-site
    roll-up's rows)."""
    active_agencies: set[str] = field(default_factory=set)
    active_service_types: set[str] = field(default_factory=set)
    hosted: Mapping[str, Any] = field(default_factory=dict)
    max_error: dict[str, int] = field(default_factory=dict)
    """Per duration kind, the error bound of its percentiles when it exceeds the histogram's own."""


def pct(part: int, whole: int) -> float | None:
    """A percentage rounded half up to two decimals, none for an empty whole."""
    if whole <= 0:
        return None
    value = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return float(value)


def mean(total: int, count: int) -> float | None:
    if count <= 0:
        return None
    return float((Decimal(total) / Decimal(count)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _m1(t: Totals) -> dict[str, Any]:
    hosted = t.hosted.get("agencies")
    figures: dict[str, Any] = {"agencies_active": len(t.active_agencies)}
    if hosted is not None:
        codes: set[str] = set(hosted)
        figures["agencies_hosted"] = len(codes)
        figures["agencies_by_type"] = dict(sorted(Counter(hosted.values()).items()))
        figures["agencies_without_activity"] = len(codes - t.active_agencies)
    return figures


def _m2(t: Totals) -> dict[str, Any]:
    hosted = t.hosted.get("service_types")
    figures: dict[str, Any] = {"service_types_active": len(t.active_service_types)}
    if hosted is not None:
        figures["service_types_hosted"] = len(hosted)
        figures["licensing"] = sum(1 for s in hosted.values() if s["licensing"])
        figures["non_licensing"] = sum(1 for s in hosted.values() if not s["licensing"])
        figures["online_enabled"] = sum(1 for s in hosted.values() if s["online_enabled"])
        figures["by_agency"] = dict(sorted(Counter(s["agency"] for s in hosted.values()).items()))
    return figures


def _m3(t: Totals) -> dict[str, Any]:
    m = t.measures
    return {"visitors": m["visits"], **{f"visitors_{c}": m[f"visits_{c}"] for c in CHANNELS}}


def _m4(t: Totals) -> dict[str, Any]:
    m = t.measures
    return {
        "tickets_issued": m["tickets_issued"],
        "tickets_served": m["tickets_served"],
        "tickets_no_show": m["tickets_no_show"],
        "tickets_cancelled": m["tickets_cancelled"],
        "tickets_transferred_in": m["tickets_transferred_in"],
        "applications_submitted": m["applications_submitted"],
        "appointments_booked": m["appointments_booked"],
        "appointments_checked_in": m["appointments_checked_in"],
    }


def _m5(t: Totals) -> dict[str, Any]:
    m = t.measures
    return {
        "applications_finished": m["applications_finished"],
        "applications_rejected": m["applications_rejected"],
        "applications_with_sla_outcome": m["applications_sla_known"],
        "applications_within_sla": m["applications_within_sla"],
        "sla_compliance_pct": pct(m["applications_within_sla"], m["applications_sla_known"]),
        "mean_working_days": mean(m["applications_working_days_sum"], m["applications_working_days_count"]),
    }


def skm_totals(m: Mapping[str, int]) -> dict[str, ikm.ElementTotal]:
    return {
        e: ikm.ElementTotal(m.get(f"skm_{e.lower()}_answers", 0), m.get(f"skm_{e.lower()}_sum", 0))
        for e in ikm.ELEMENTS
    }


def _m6(t: Totals) -> dict[str, Any]:
    totals = skm_totals(t.measures)
    index = ikm.index(totals)
    elements = []
    for code, total in totals.items():
        value = ikm.element_index(total)
        elements.append(
            {
                "element": code,
                "label": ikm.ELEMENT_LABELS[code],
                "answers": total.answers,
                "score_sum": total.score_sum,
                "index": None if value is None else float(value),
            }
        )
    scored = [e for e in elements if e["index"] is not None]
    weakest = min(scored, key=lambda e: (e["index"], e["element"]))["element"] if scored else None
    grade = ikm.grade(index) if index is not None else None
    return {
        "respondents": t.measures["skm_respondents"],
        "ikm": None if index is None else float(index),
        "grade": None if grade is None else grade.value,
        "grade_label": None if grade is None else grade.label,
        "weakest_element": weakest,
        "elements": elements,
    }


def _m7(t: Totals) -> dict[str, Any]:
    m = t.measures
    return {
        "received": m["complaints_received"],
        "anonymous": m["complaints_anonymous"],
        "by_channel": {
            c: m[f"complaints_channel_{c}"] for c in COMPLAINT_CHANNELS if m[f"complaints_channel_{c}"]
        },
        "by_category": {
            c: m[f"complaints_category_{c}"] for c in COMPLAINT_CATEGORIES if m[f"complaints_category_{c}"]
        },
        "responded": m["complaints_responded"],
        "followed_up_pct": pct(m["complaints_responded"], m["complaints_received"]),
        "responded_within_limit": m["complaints_responded_within_limit"],
        "response_within_limit_pct": pct(m["complaints_responded_within_limit"], m["complaints_responded"]),
        "mean_response_working_days": mean(m["complaints_response_days_sum"], m["complaints_responded"]),
        "resolved": m["complaints_resolved"],
        "resolved_within_limit": m["complaints_resolved_within_limit"],
        "resolution_within_limit_pct": pct(m["complaints_resolved_within_limit"], m["complaints_resolved"]),
        "mean_resolution_working_days": mean(m["complaints_resolution_days_sum"], m["complaints_resolved"]),
    }


def _m8(t: Totals) -> dict[str, Any]:
    m = t.measures
    online = m["tickets_online"] + m["tickets_mpp_digital"]
    apps_online = m["applications_online"] + m["applications_mpp_digital"]
    return {
        "tickets_issued": m["tickets_issued"],
        **{f"tickets_{c}": m[f"tickets_{c}"] for c in CHANNELS},
        "tickets_online_pct": pct(online, m["tickets_issued"]),
        "applications_submitted": m["applications_submitted"],
        **{f"applications_{c}": m[f"applications_{c}"] for c in CHANNELS},
        "applications_online_pct": pct(apps_online, m["applications_submitted"]),
    }


def _m9(t: Totals) -> dict[str, Any]:
    m = t.measures
    served = {g: m[f"priority_served_{g}"] for g in PRIORITY_GROUPS}
    issued = {g: m[f"priority_issued_{g}"] for g in PRIORITY_GROUPS}
    return {
        "priority_served": sum(served.values()),
        "priority_served_by_group": served,
        "priority_issued": sum(issued.values()),
        "priority_issued_by_group": issued,
        "priority_served_pct": pct(sum(served.values()), m["tickets_served"]),
    }


def _m10(t: Totals) -> dict[str, Any]:
    m = t.measures
    return {"permits_issued": m["permits_issued"], "documents_issued": m["documents_issued"]}


_EMPTY: Mapping[int, int] = {}


def _durations(kind: str) -> Callable[[Totals], dict[str, Any]]:
    def compute(t: Totals) -> dict[str, Any]:
        histogram = t.histograms.get(kind, _EMPTY)
        median, p90 = percentiles(histogram, (0.5, 0.9))
        count = t.measures[f"{kind}_count"] if t.measures else sum(histogram.values())
        return {
            "count": count,
            "mean_seconds": mean(t.measures[f"{kind}_seconds_sum"], t.measures[f"{kind}_count"]),
            "median_seconds": None if median is None else median.seconds,
            "p90_seconds": None if p90 is None else p90.seconds,
            "beyond_cap": bool((median and median.at_least) or (p90 and p90.at_least)),
            "max_error_seconds": t.max_error.get(kind, MAX_ERROR_SECONDS),
        }

    return compute


def _d3(t: Totals) -> dict[str, Any]:
    m = t.measures
    figures: dict[str, Any] = {
        "counters_opened": m["counters_opened"],
        "counters_opened_planned": m["counters_opened_planned"],
        "counters_opened_extra": m["counters_opened_extra"],
        "counter_open_hours": float(
            (Decimal(m["counter_open_seconds"]) / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        ),
    }
    if "counters" in t.hosted:
        figures["counters_in_catalogue"] = t.hosted["counters"]
    return figures


_DURATION_BY_HOUR = ("count", "median_seconds", "p90_seconds", "beyond_cap", "max_error_seconds")


@dataclass(frozen=True, slots=True)
class Metric:
    id: str
    key: str
    name: str
    description: str
    formula: str
    source: str
    compute: Callable[[Totals], dict[str, Any]]
    measures: tuple[str, ...] = ()
    """Measure names or prefixes (ending in ``_``) the figure reads."""
    hourly: str | None = None
    """Where figures by hour of day come from: ``hourly`` counts, ``histogram`` buckets, or none."""
    activity: bool = False
    """Computed from the agencies and service types with activity (M1, M2)."""
    hourly_figures: tuple[str, ...] = ()
    """The figures that exist per hour of day (the others are kept per day only)."""

    def by_hour(self, figures: dict[str, Any]) -> dict[str, Any]:
        """Only the figures that exist per hour of day."""
        return {k: v for k, v in figures.items() if k in self.hourly_figures}

    def definition(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "description": self.description,
            "formula": self.formula,
            "source": self.source,
            "by_hour": self.hourly is not None,
            "href": f"/v1/metrics/{self.id}/definition",
        }


METRICS: tuple[Metric, ...] = (
    Metric(
        "M1",
        "agencies",
        "Instansi yang bergabung",
        "Jumlah instansi (tenant) yang hadir di MPP menurut jenisnya (pusat/vertikal, OPD, provinsi, BUMN, "
        "BUMD, swasta/bank), serta yang aktif melayani dan yang kosong dalam periode.",
        "instansi_terdaftar = instansi dengan loket di MPP (data induk); instansi_aktif = instansi dengan "
        "tiket atau permohonan dalam periode; kosong = terdaftar - aktif",
        "Data induk (katalog) dan peristiwa TicketIssued, ApplicationSubmitted, DocumentApplicationSubmitted",
        _m1,
        measures=("tickets_issued", "applications_submitted"),
        activity=True,
    ),
    Metric(
        "M2",
        "service-types",
        "Jenis layanan",
        "Jumlah jenis layanan per instansi: perizinan dan nonperizinan, yang dapat diajukan daring, dan "
        "yang aktif dalam periode.",
        "jenis_layanan = jenis layanan instansi yang hadir (data induk); aktif = jenis layanan dengan tiket "
        "atau permohonan dalam periode",
        "Data induk (katalog) dan peristiwa TicketIssued, ApplicationSubmitted, DocumentApplicationSubmitted",
        _m2,
        measures=("tickets_issued", "applications_submitted"),
        activity=True,
    ),
    Metric(
        "M3",
        "visitors",
        "Pengunjung",
        "Kunjungan unik ke MPP per hari, bulan dan tahun, menurut jam kedatangan dan kanal. Kunjungan "
        "dihitung per MPP, tidak per instansi.",
        "pengunjung = jumlah kunjungan yang dimulai (satu kunjungan = satu kedatangan warga)",
        "Peristiwa VisitStarted",
        _m3,
        measures=("visits", "visits_"),
        hourly="hourly",
        hourly_figures=("visitors",),
    ),
    Metric(
        "M4",
        "transactions",
        "Transaksi",
        "Tiket antrean dan permohonan per jenis layanan dan instansi.",
        "tiket = jumlah tiket diterbitkan; permohonan = jumlah permohonan diajukan",
        "Peristiwa TicketIssued, ServiceCompleted, TicketNoShow, TicketCancelled, ApplicationSubmitted, "
        "DocumentApplicationSubmitted, AppointmentBooked, AppointmentCheckedIn",
        _m4,
        measures=("tickets_", "applications_submitted", "appointments_"),
        hourly="hourly",
        hourly_figures=("tickets_issued",),
    ),
    Metric(
        "M5",
        "sla-compliance",
        "Kepatuhan standar waktu pelayanan",
        "Persentase permohonan yang selesai dalam jangka waktu penyelesaian yang dipublikasikan (hari kerja "
        "menurut kalender MPP).",
        "kepatuhan (%) = 100 x selesai_tepat_waktu / selesai_dengan_hasil_SLA; tepat waktu dari peristiwa, "
        "atau dihitung dari hari kerja kalender MPP dan standar pelayanan bila peristiwa tidak memuatnya",
        "Peristiwa PermitIssued, DocumentIssued, ApplicationRejected, DocumentApplicationRejected",
        _m5,
        measures=(
            "applications_finished",
            "applications_rejected",
            "applications_sla_known",
            "applications_within_sla",
            "applications_working_days_",
        ),
    ),
    Metric(
        "M6",
        "ikm",
        "Indeks Kepuasan Masyarakat (IKM)",
        "IKM keseluruhan dan per unsur (U1-U9) menurut PermenPANRB 14/2017, dengan jumlah responden dan "
        "mutu pelayanan.",
        "NRR_u = jumlah nilai unsur u / jumlah jawaban sah unsur u; IKM = 25 x (NRR_1 + ... + NRR_9) x 1/9, "
        "dibulatkan dua desimal; mutu A >= 88,31; B >= 76,61; C >= 65,00; D di bawahnya",
        "Peristiwa SurveySubmitted (anonim)",
        _m6,
        measures=("skm_",),
    ),
    Metric(
        "M7",
        "complaints",
        "Pengaduan",
        "Pengaduan menurut kanal dan kategori, persentase yang ditindaklanjuti, serta waktu tanggapan pertama "
        "dan penyelesaian dibandingkan batas waktu SP4N-LAPOR!.",
        "ditindaklanjuti (%) = 100 x ditanggapi / diterima; tepat waktu (%) = 100 x dalam_batas / jumlah; "
        "rata-rata hari kerja = jumlah hari kerja / jumlah",
        "Peristiwa ComplaintReceived, ComplaintResponded, ComplaintResolved",
        _m7,
        measures=("complaints_",),
    ),
    Metric(
        "M8",
        "online-share",
        "Daring dan datang langsung",
        "Persentase transaksi yang dipesan daring (antrean daring, MPP Digital) dibandingkan datang langsung.",
        "daring (%) = 100 x (daring + mpp_digital) / seluruh tiket (atau permohonan)",
        "Peristiwa TicketIssued, ApplicationSubmitted, DocumentApplicationSubmitted",
        _m8,
        measures=(
            "tickets_issued",
            "tickets_walk_in",
            "tickets_online",
            "tickets_mpp_digital",
            "applications_",
        ),
    ),
    Metric(
        "M9",
        "vulnerable-groups",
        "Kelompok rentan yang dilayani",
        "Tiket prioritas menurut kelompok: lansia, penyandang disabilitas, ibu hamil, anak, korban bencana.",
        "dilayani_prioritas = tiket prioritas yang selesai dilayani per kelompok; persentase = 100 x "
        "dilayani_prioritas / seluruh tiket dilayani",
        "Peristiwa TicketIssued, ServiceCompleted",
        _m9,
        measures=("priority_", "tickets_served"),
    ),
    Metric(
        "M10",
        "permits",
        "Izin dan dokumen terbit",
        "Izin/NIB yang diterbitkan (keluaran investasi) dan dokumen kependudukan yang diterbitkan.",
        "izin_terbit = jumlah PermitIssued; dokumen_terbit = jumlah DocumentIssued",
        "Peristiwa PermitIssued, DocumentIssued",
        _m10,
        measures=("permits_issued", "documents_issued"),
    ),
    Metric(
        "D1",
        "waiting-time",
        "Waktu tunggu",
        "Waktu dari pengambilan tiket sampai panggilan pertama: median dan persentil ke-90 per instansi, "
        "layanan dan jam pengambilan tiket.",
        "tunggu = called_at - issued_at; median dan P90 peringkat terdekat dari histogram 10 detik (hingga "
        "8 jam), galat paling besar 9 detik ke atas",
        "Peristiwa TicketCalled (panggilan pertama)",
        _durations(WAITING),
        measures=("waiting_",),
        hourly="histogram",
        hourly_figures=_DURATION_BY_HOUR,
    ),
    Metric(
        "D2",
        "service-time",
        "Waktu pelayanan",
        "Waktu dari mulai sampai selesai dilayani di loket: median dan persentil ke-90.",
        "layanan = finished_at - started_at; median dan P90 peringkat terdekat dari histogram 10 detik "
        "(hingga 8 jam), galat paling besar 9 detik ke atas",
        "Peristiwa ServiceCompleted",
        _durations(SERVICE),
        measures=("service_",),
        hourly="histogram",
        hourly_figures=_DURATION_BY_HOUR,
    ),
    Metric(
        "D3",
        "operations",
        "Operasional loket",
        "Loket yang dibuka dibandingkan rencana, dan lama loket dibuka.",
        "loket_dibuka = jumlah pembukaan loket (terencana dan tambahan); jam_buka = jumlah lama buka / 3600",
        "Peristiwa CounterOpened, CounterClosed; data induk loket",
        _d3,
        measures=("counters_", "counter_open_seconds"),
    ),
)

BY_ID: dict[str, Metric] = {m.id.lower(): m for m in METRICS} | {m.key: m for m in METRICS}


def find(name: str) -> Metric | None:
    """A metric by its id (``M6``, any case) or key (``ikm``)."""
    return BY_ID.get(name.lower())


def reads(metric: Metric, measure: str) -> bool:
    return any(measure == m or (m.endswith("_") and measure.startswith(m)) for m in metric.measures)
