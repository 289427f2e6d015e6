"""The generated schemas, AsyncAPI document and catalogue page: current, deterministic and guarded."""

import json
from pathlib import Path

import pytest

from mpp.contracts import registered_events
from mpp.contracts.events.identity import CitizenVerificationRequestedV1
from mpp.contracts.generate import (
    ASYNCAPI_FILE,
    CATALOGUE_FILE,
    CONTRACTS_DIR,
    check,
    event_schema,
    generated_files,
    main,
    schema_path,
    write,
)
from mpp.contracts.topics import TOPICS

pytestmark = pytest.mark.unit

VISIT_STARTED = "schemas/queue/VisitStarted.v1.json"


@pytest.fixture
def written(tmp_path: Path) -> Path:
    assert write(tmp_path) == []
    return tmp_path


class TestCommittedFiles:
    def test_are_current_and_compatible(self) -> None:
        assert check(CONTRACTS_DIR) == []

    def test_contracts_dir_is_the_repository_folder(self) -> None:
        assert (CONTRACTS_DIR / "pyproject.toml").is_file()


class TestGeneration:
    def test_is_deterministic(self) -> None:
        assert generated_files() == generated_files()

    def test_writes_one_schema_per_event_version(self, written: Path) -> None:
        assert sorted(
            p.relative_to(written).as_posix() for p in (written / "schemas").rglob("*.json")
        ) == sorted(schema_path(cls) for cls in registered_events())

    def test_files_end_with_a_newline(self, written: Path) -> None:
        assert (written / VISIT_STARTED).read_text(encoding="utf-8").endswith("}\n")

    def test_schema_carries_id_title_description_and_topic(self) -> None:
        schema = event_schema(CitizenVerificationRequestedV1)

        assert schema["$id"] == "urn:mpp:event:identity:CitizenVerificationRequested:v1"
        assert schema["title"] == "CitizenVerificationRequested v1"
        assert schema["description"].startswith("An agency service asks")
        assert schema["x-topic"] == "mpp.identity.verification-requests"

    def test_schema_marks_personal_fields(self) -> None:
        schema = event_schema(CitizenVerificationRequestedV1)

        assert schema["properties"]["nik"]["x-personal-data"] is True
        assert "x-personal-data" not in schema["properties"]["case_id"]

    def test_asyncapi_has_a_channel_per_topic_and_a_message_per_event(self) -> None:
        document = json.loads(generated_files()[ASYNCAPI_FILE])

        assert document["asyncapi"] == "3.0.0"
        assert {c["address"] for c in document["channels"].values()} == {t.name for t in TOPICS}
        assert set(document["components"]["messages"]) == {
            f"{c.event_type}.v{c.event_version}" for c in registered_events()
        }

    def test_asyncapi_payloads_refer_to_the_schema_files(self) -> None:
        document = json.loads(generated_files()[ASYNCAPI_FILE])

        assert document["components"]["messages"]["VisitStarted.v1"]["payload"]["schema"] == {
            "$ref": f"./{VISIT_STARTED}"
        }

    def test_catalogue_page_lists_every_event(self) -> None:
        page = generated_files()[CATALOGUE_FILE]

        assert all(f"### {c.event_type} v{c.event_version}" in page for c in registered_events())


class TestCheckCommand:
    def test_passes_on_current_files(self, written: Path) -> None:
        assert main(["--check", "--out", str(written)]) == 0

    def test_fails_when_files_are_missing(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["--check", "--out", str(tmp_path)]) == 1
        assert "asyncapi.json: missing" in capsys.readouterr().err

    def test_fails_when_a_file_is_out_of_date(
        self, written: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (written / CATALOGUE_FILE).write_text("# edited by hand\n", encoding="utf-8")

        assert main(["--check", "--out", str(written)]) == 1
        assert "CATALOGUE.md: out of date" in capsys.readouterr().err

    def test_fails_when_a_committed_field_disappeared(
        self, written: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        committed = json.loads((written / VISIT_STARTED).read_text(encoding="utf-8"))
        committed["properties"]["kiosk"] = {"type": "string"}
        (written / VISIT_STARTED).write_text(json.dumps(committed), encoding="utf-8")

        assert main(["--check", "--out", str(written)]) == 1
        assert "field 'kiosk' was removed" in capsys.readouterr().err

    def test_fails_when_a_published_event_is_no_longer_registered(
        self, written: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (written / "schemas/queue/VisitPaused.v1.json").write_text(
            (written / VISIT_STARTED).read_text(encoding="utf-8"), encoding="utf-8"
        )

        assert main(["--check", "--out", str(written)]) == 1
        assert "no longer registered" in capsys.readouterr().err


class TestWriteCommand:
    def test_refuses_an_incompatible_change(self, written: Path) -> None:
        committed = json.loads((written / VISIT_STARTED).read_text(encoding="utf-8"))
        committed["properties"]["kiosk"] = {"type": "string"}
        edited = json.dumps(committed)
        (written / VISIT_STARTED).write_text(edited, encoding="utf-8")

        assert main(["--out", str(written)]) == 1
        assert (written / VISIT_STARTED).read_text(encoding="utf-8") == edited

    def test_overwrites_with_allow_breaking(self, written: Path) -> None:
        (written / VISIT_STARTED).write_text(
            '{"properties": {"kiosk": {"type": "string"}}}', encoding="utf-8"
        )

        assert main(["--out", str(written), "--allow-breaking"]) == 0
        assert check(written) == []
