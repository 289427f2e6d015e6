"""A service refuses to start on a bad configuration, with one message naming the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from mpp.contracts.masterdata import DEMO_CATALOGUE

pytestmark = pytest.mark.unit


def _start(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _catalogue_with(tmp_path: Path, change: str) -> Path:
    doc = json.loads(resources.files("mpp.contracts").joinpath("data", DEMO_CATALOGUE).read_text("utf-8"))
    pbg = next(w for w in doc["workflows"] if w["code"] == "pbg")
    if change == "unknown-state":
        pbg["actions"][0]["to_state"] = "entah_ke_mana"
    elif change == "unknown-role":
        pbg["actions"][0]["roles"] = ["tukang_parkir"]
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "named"),
    [("unknown-state", "entah_ke_mana"), ("unknown-role", "tukang_parkir")],
)
def test_a_broken_workflow_stops_licensing_at_startup(tmp_path: Path, change: str, named: str) -> None:
    result = _start(
        "mpp.licensing",
        {
            "MPP_LICENSING_CATALOGUE_FILE": str(_catalogue_with(tmp_path, change)),
            "MPP_LICENSING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'licensing.db'}",
        },
    )
    assert result.returncode == 2
    assert "licensing: refusing to start" in result.stderr
    assert "workflow 'pbg'" in result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_a_setting_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    result = _start("mpp.reporting", {"MPP_REPORTING_HTTP_PORT": "delapan-ribu"})
    assert result.returncode == 2
    assert "http_port" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_catalogue_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "tidak-ada.json"
    result = _start(
        "mpp.licensing",
        {
            "MPP_LICENSING_CATALOGUE_FILE": str(missing),
            "MPP_LICENSING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'licensing.db'}",
        },
    )
    assert result.returncode == 2
    assert "tidak-ada.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_several_workers_on_sqlite_are_refused(tmp_path: Path) -> None:
    # Only PostgreSQL elects one outbox relay among processes and locks rows between them.
    result = _start(
        "mpp.licensing",
        {
            "MPP_LICENSING_HTTP_WORKERS": "2",
            "MPP_LICENSING_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'licensing.db'}",
        },
    )
    assert result.returncode == 2
    assert "http_workers" in result.stderr
    assert "PostgreSQL" in result.stderr
    assert "Traceback" not in result.stderr
