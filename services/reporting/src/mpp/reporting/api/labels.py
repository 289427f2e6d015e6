"""Indonesian labels and display formats of the figures the metric catalogue returns."""

from __future__ import annotations

# field -> (label, format: int, pct, dec, dur, text)
FIELDS: dict[str, tuple[str, str]] = {
    "agencies_active": ("Instansi aktif", "int"),
    "agencies_hosted": ("Instansi terdaftar", "int"),
    "agencies_without_activity": ("Instansi tanpa kegiatan", "int"),
    "service_types_active": ("Jenis layanan aktif", "int"),
    "service_types_hosted": ("Jenis layanan terdaftar", "int"),
    "licensing": ("Perizinan", "int"),
    "non_licensing": ("Nonperizinan", "int"),
    "online_enabled": ("Dapat diajukan daring", "int"),
    "visitors": ("Pengunjung", "int"),
    "visitors_walk_in": ("Pengunjung datang langsung", "int"),
    "visitors_online": ("Pengunjung antrean daring", "int"),
    "visitors_mpp_digital": ("Pengunjung MPP Digital", "int"),
    "tickets_issued": ("Tiket diterbitkan", "int"),
    "tickets_served": ("Tiket dilayani", "int"),
    "tickets_no_show": ("Tiket tidak hadir", "int"),
    "tickets_cancelled": ("Tiket dibatalkan", "int"),
    "tickets_transferred_in": ("Tiket rujukan masuk", "int"),
    "applications_submitted": ("Permohonan diajukan", "int"),
    "appointments_booked": ("Janji temu dipesan", "int"),
    "appointments_checked_in": ("Janji temu hadir", "int"),
    "applications_finished": ("Permohonan selesai", "int"),
    "applications_rejected": ("Permohonan ditolak", "int"),
    "applications_with_sla_outcome": ("Selesai dengan hasil SLA", "int"),
    "applications_within_sla": ("Selesai tepat waktu", "int"),
    "sla_compliance_pct": ("Kepatuhan SLA", "pct"),
    "mean_working_days": ("Rata-rata hari kerja", "dec"),
    "respondents": ("Responden", "int"),
    "ikm": ("IKM", "dec"),
    "grade": ("Mutu", "text"),
    "grade_label": ("Kinerja", "text"),
    "weakest_element": ("Unsur terlemah", "text"),
    "received": ("Pengaduan diterima", "int"),
    "anonymous": ("Anonim", "int"),
    "responded": ("Ditanggapi", "int"),
    "followed_up_pct": ("Ditindaklanjuti", "pct"),
    "responded_within_limit": ("Ditanggapi tepat waktu", "int"),
    "response_within_limit_pct": ("Tanggapan tepat waktu", "pct"),
    "mean_response_working_days": ("Rata-rata hari kerja tanggapan", "dec"),
    "resolved": ("Diselesaikan", "int"),
    "resolved_within_limit": ("Diselesaikan tepat waktu", "int"),
    "resolution_within_limit_pct": ("Penyelesaian tepat waktu", "pct"),
    "mean_resolution_working_days": ("Rata-rata hari kerja penyelesaian", "dec"),
    "tickets_walk_in": ("Tiket datang langsung", "int"),
    "tickets_online": ("Tiket antrean daring", "int"),
    "tickets_mpp_digital": ("Tiket MPP Digital", "int"),
    "tickets_online_pct": ("Tiket daring", "pct"),
    "applications_walk_in": ("Permohonan datang langsung", "int"),
    "applications_online": ("Permohonan daring", "int"),
    "applications_mpp_digital": ("Permohonan MPP Digital", "int"),
    "applications_online_pct": ("Permohonan daring", "pct"),
    "priority_served": ("Prioritas dilayani", "int"),
    "priority_issued": ("Tiket prioritas", "int"),
    "priority_served_pct": ("Prioritas dari seluruh dilayani", "pct"),
    "permits_issued": ("Izin terbit", "int"),
    "documents_issued": ("Dokumen kependudukan terbit", "int"),
    "count": ("Jumlah", "int"),
    "mean_seconds": ("Rata-rata", "dur"),
    "median_seconds": ("Median", "dur"),
    "p90_seconds": ("Persentil ke-90", "dur"),
    "beyond_cap": ("Melebihi 8 jam", "text"),
    "counters_opened": ("Loket dibuka", "int"),
    "counters_opened_planned": ("Loket dibuka terencana", "int"),
    "counters_opened_extra": ("Loket tambahan", "int"),
    "counter_open_hours": ("Jam buka loket", "dec"),
    "counters_in_catalogue": ("Loket dalam data induk", "int"),
}

# Nested breakdowns: field -> label of the group.
GROUPS: dict[str, str] = {
    "agencies_by_type": "Instansi menurut jenis",
    "by_agency": "Jenis layanan per instansi",
    "by_channel": "Menurut kanal",
    "by_category": "Menurut kategori",
    "priority_served_by_group": "Prioritas dilayani per kelompok",
    "priority_issued_by_group": "Tiket prioritas per kelompok",
}

# Codes inside the nested breakdowns that have an Indonesian name.
CODES: dict[str, str] = {
    "central": "Pusat/vertikal",
    "local_opd": "OPD kabupaten/kota",
    "province": "Pemerintah provinsi",
    "bumn": "BUMN",
    "bumd": "BUMD",
    "private": "Swasta/bank",
    "walk_in": "Datang langsung",
    "online": "Daring",
    "mpp_digital": "MPP Digital",
    "counter": "Loket",
    "suggestion_box": "Kotak saran",
    "phone": "Telepon",
    "social_media": "Media sosial",
    "requirements": "Persyaratan",
    "procedure": "Prosedur",
    "service_time": "Waktu pelayanan",
    "fees": "Biaya",
    "product": "Produk layanan",
    "staff_conduct": "Perilaku petugas",
    "facilities": "Sarana dan prasarana",
    "queue": "Antrean",
    "information": "Informasi",
    "illegal_levy": "Pungutan liar",
    "other": "Lainnya",
    "ibu_hamil": "ibu hamil",
    "korban_bencana": "korban bencana",
}

HIDDEN = frozenset({"max_error_seconds", "elements"})

PERIODS: dict[str, str] = {
    "day": "Harian",
    "week": "Mingguan",
    "month": "Bulanan",
    "quarter": "Triwulan",
    "semester": "Semester",
    "year": "Tahunan",
}

ROLES: dict[str, str] = {"ministry": "KemenPANRB", "operator": "Operator MPP"}


def label(field: str) -> str:
    return FIELDS.get(field, (field.replace("_", " "), "int"))[0]


def fmt(field: str) -> str:
    return FIELDS.get(field, ("", "int"))[1]
