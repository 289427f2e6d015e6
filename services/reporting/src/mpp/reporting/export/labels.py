"""Indonesian column headers of every figure, and the flattening of a metric's figures into columns.

A figure is a scalar (one column), a mapping of counts (one column per key, a missing key counts 0) or,
for the IKM, the list of unsur (the answers and the index of each).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

FIGURES: dict[str, str] = {
    # M1
    "agencies_active": "Instansi aktif",
    "agencies_hosted": "Instansi terdaftar",
    "agencies_by_type": "Instansi menurut jenis",
    "agencies_without_activity": "Instansi tanpa aktivitas",
    # M2
    "service_types_active": "Jenis layanan aktif",
    "service_types_hosted": "Jenis layanan terdaftar",
    "licensing": "Layanan perizinan",
    "non_licensing": "Layanan nonperizinan",
    "online_enabled": "Layanan yang dapat diajukan daring",
    "by_agency": "Jenis layanan per instansi",
    # M3
    "visitors": "Pengunjung",
    "visitors_walk_in": "Pengunjung datang langsung",
    "visitors_online": "Pengunjung antrean daring",
    "visitors_mpp_digital": "Pengunjung MPP Digital",
    # M4, M8
    "tickets_issued": "Tiket diterbitkan",
    "tickets_served": "Tiket dilayani",
    "tickets_no_show": "Tiket tidak hadir",
    "tickets_cancelled": "Tiket dibatalkan",
    "tickets_transferred_in": "Tiket pindahan masuk",
    "applications_submitted": "Permohonan diajukan",
    "appointments_booked": "Janji temu dipesan",
    "appointments_checked_in": "Janji temu hadir",
    "tickets_walk_in": "Tiket datang langsung",
    "tickets_online": "Tiket antrean daring",
    "tickets_mpp_digital": "Tiket MPP Digital",
    "tickets_online_pct": "Tiket daring (%)",
    "applications_walk_in": "Permohonan datang langsung",
    "applications_online": "Permohonan daring",
    "applications_mpp_digital": "Permohonan MPP Digital",
    "applications_online_pct": "Permohonan daring (%)",
    # M5
    "applications_finished": "Permohonan selesai",
    "applications_rejected": "Permohonan ditolak",
    "applications_with_sla_outcome": "Permohonan dengan hasil SLA",
    "applications_within_sla": "Permohonan tepat waktu",
    "sla_compliance_pct": "Kepatuhan SLA (%)",
    "mean_working_days": "Rata-rata hari kerja penyelesaian",
    # M6
    "respondents": "Responden",
    "ikm": "IKM",
    "grade": "Mutu pelayanan",
    "grade_label": "Kinerja unit pelayanan",
    "weakest_element": "Unsur terlemah",
    # M7
    "received": "Pengaduan diterima",
    "anonymous": "Pengaduan anonim",
    "by_channel": "Pengaduan per kanal",
    "by_category": "Pengaduan per kategori",
    "responded": "Pengaduan ditanggapi",
    "followed_up_pct": "Ditindaklanjuti (%)",
    "responded_within_limit": "Ditanggapi dalam batas waktu",
    "response_within_limit_pct": "Tanggapan tepat waktu (%)",
    "mean_response_working_days": "Rata-rata hari kerja tanggapan",
    "resolved": "Pengaduan diselesaikan",
    "resolved_within_limit": "Diselesaikan dalam batas waktu",
    "resolution_within_limit_pct": "Penyelesaian tepat waktu (%)",
    "mean_resolution_working_days": "Rata-rata hari kerja penyelesaian pengaduan",
    # M9
    "priority_served": "Tiket prioritas dilayani",
    "priority_served_by_group": "Prioritas dilayani",
    "priority_issued": "Tiket prioritas diterbitkan",
    "priority_issued_by_group": "Prioritas diterbitkan",
    "priority_served_pct": "Prioritas dilayani (%)",
    # M10
    "permits_issued": "Izin terbit",
    "documents_issued": "Dokumen terbit",
    # D1, D2
    "count": "Jumlah",
    "mean_seconds": "Rata-rata (detik)",
    "median_seconds": "Median (detik)",
    "p90_seconds": "Persentil ke-90 (detik)",
    "beyond_cap": "Melebihi 8 jam",
    "max_error_seconds": "Galat paling besar (detik)",
    # D3
    "counters_opened": "Pembukaan loket",
    "counters_opened_planned": "Pembukaan loket terencana",
    "counters_opened_extra": "Pembukaan loket tambahan",
    "counter_open_hours": "Jam buka loket",
    "counters_in_catalogue": "Loket dalam katalog",
}

KEYS: dict[str, str] = {
    # channels of visits, tickets and applications; complaint channels
    "walk_in": "datang langsung",
    "online": "daring",
    "mpp_digital": "MPP Digital",
    "sp4n_lapor": "SP4N-LAPOR!",
    "counter": "loket",
    "suggestion_box": "kotak saran",
    "whatsapp": "WhatsApp",
    "email": "surel",
    "phone": "telepon",
    "website": "situs web",
    "social_media": "media sosial",
    # complaint categories
    "requirements": "persyaratan",
    "procedure": "prosedur",
    "service_time": "waktu pelayanan",
    "fees": "biaya/tarif",
    "product": "produk layanan",
    "staff_conduct": "perilaku petugas",
    "facilities": "sarana dan prasarana",
    "queue": "antrean",
    "information": "informasi",
    "illegal_levy": "pungutan liar",
    "other": "lainnya",
    # priority groups
    "lansia": "lansia",
    "disabilitas": "penyandang disabilitas",
    "ibu_hamil": "ibu hamil",
    "anak": "anak",
    "korban_bencana": "korban bencana",
}

GROUPS: dict[str, str] = {
    "site": "Kode MPP",
    "agency": "Instansi",
    "service_type": "Jenis layanan",
    "kabkota": "Kode kab/kota",
    "province": "Kode provinsi",
    "hour": "Jam",
    "weekday": "Hari (1 = Senin)",
}

PERIODS: dict[str, str] = {
    "day": "harian",
    "week": "mingguan",
    "month": "bulanan",
    "quarter": "triwulanan",
    "semester": "semesteran",
    "year": "tahunan",
    "all": "seluruh-rentang",
}

MONTHS = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)


def header(path: str) -> str:
    """The header of a flattened figure: ``visitors``, ``by_channel.sp4n_lapor``, ``elements.U1.index``."""
    parts = path.split(".")
    if parts[0] == "elements":
        code, what = parts[1], parts[2]
        return f"{'Jawaban' if what == 'answers' else 'Indeks'} {code}"
    label = FIGURES.get(parts[0], parts[0])
    if len(parts) == 1:
        return label
    return f"{label}: {KEYS.get(parts[1], parts[1])}"


def flatten(figures: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(path, value) of every scalar in a metric's figures, in the order the figures give them."""
    for key, value in figures.items():
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                yield f"{key}.{sub}", inner
        elif isinstance(value, list):
            for element in value:
                yield f"{key}.{element['element']}.answers", element["answers"]
                yield f"{key}.{element['element']}.index", element["index"]
        else:
            yield key, value


def value_at(figures: Mapping[str, Any], path: str) -> Any:
    """The value of a flattened path in ``figures``; a count missing from a mapping is 0."""
    parts = path.split(".")
    value = figures.get(parts[0])
    if len(parts) == 1:
        return value
    if parts[0] == "elements":
        for element in value or ():
            if element["element"] == parts[1]:
                return element[parts[2]]
        return None
    return (value or {}).get(parts[1], 0)
