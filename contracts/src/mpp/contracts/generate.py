"""Generate the published contract files from the payload classes, or check that they are current.

    python -m mpp.contracts.generate            # write contracts/schemas, asyncapi.json, CATALOGUE.md
    python -m mpp.contracts.generate --check    # exit 1 if a file is stale or a schema broke compatibility
    python -m mpp.contracts.generate --out DIR  # another output directory

Files written:

* ``schemas/<domain>/<EventType>.v<N>.json``: the JSON Schema of each payload version;
* ``asyncapi.json``: an AsyncAPI 3.0 document (channels are topics, operations are the owners'
  sends and the consumer groups' receives);
* ``CATALOGUE.md``: the readable event and topic catalogue.

Output is deterministic. A schema is compared with the committed file it replaces: writing refuses an
incompatible change (unless ``--allow-breaking``, for a version that was never published), and
``--check`` reports it. A breaking change belongs in a new payload class with a new version.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mpp.contracts.compat import check_compatible, describe
from mpp.contracts.envelope import PERSONAL_DATA_KEY, EventPayload, registered_events
from mpp.contracts.topics import (
    CONSUMER_GROUPS,
    DEAD_LETTER_PARTITIONS,
    DEAD_LETTER_RETENTION_MS,
    TOPICS,
    topic,
)

CONTRACTS_DIR = Path(__file__).resolve().parents[3]
"""The repository's ``contracts/`` directory (this file is ``contracts/src/mpp/contracts/generate.py``)."""

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FORMAT = "application/schema+json;version=draft-2020-12"
ASYNCAPI_FILE = "asyncapi.json"
CATALOGUE_FILE = "CATALOGUE.md"
SCHEMAS_DIR = "schemas"
CATALOGUE_VERSION = "1.0.0"
"""``info.version`` of the AsyncAPI document; it follows the package version."""

GENERATE_COMMAND = "python -m mpp.contracts.generate"

Json = dict[str, Any]


def render_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_id(cls: type[EventPayload]) -> str:
    return f"urn:mpp:event:{cls.domain}:{cls.event_type}:v{cls.event_version}"


def schema_path(cls: type[EventPayload]) -> str:
    """Path of the class's schema relative to the output directory."""
    return f"{SCHEMAS_DIR}/{cls.domain}/{cls.event_type}.v{cls.event_version}.json"


def event_schema(cls: type[EventPayload]) -> Json:
    """The JSON Schema of one payload version, with the catalogue's ``x-`` annotations."""
    spec = topic(cls.topic)
    schema = cls.model_json_schema(mode="validation")
    schema.update(
        {
            "$schema": SCHEMA_DIALECT,
            "$id": schema_id(cls),
            "title": f"{cls.event_type} v{cls.event_version}",
            "x-domain": cls.domain,
            "x-event-type": cls.event_type,
            "x-event-version": cls.event_version,
            "x-topic": cls.topic,
            "x-key": spec.key,
            "x-personal-data-topic": spec.personal_data,
        }
    )
    return schema


# --- AsyncAPI ------------------------------------------------------------------------------------

CLOUDEVENTS_HEADERS: Json = {
    "type": "object",
    "description": "CloudEvents Kafka binding, binary mode: every envelope attribute is a header.",
    "properties": {
        "ce_specversion": {"const": "1.0", "description": "CloudEvents spec version."},
        "ce_id": {
            "type": "string",
            "format": "uuid",
            "description": "Event id; consumers deduplicate on it.",
        },
        "ce_source": {"type": "string", "description": "Producing service, e.g. mpp.licensing."},
        "ce_type": {"type": "string", "description": "Event type."},
        "ce_time": {"type": "string", "format": "date-time", "description": "When it happened (UTC)."},
        "ce_subject": {"type": "string", "description": "Aggregate id; equal to the record key."},
        "ce_dataschema": {"type": "string", "description": "<type>.v<version> of the payload schema."},
        "ce_eventversion": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "Payload version."},
        "ce_agency": {"type": "string", "description": "Agency (tenant) code."},
        "ce_site": {"type": "string", "description": "MPP site code."},
        "ce_correlationid": {
            "type": "string",
            "description": "Id shared by every event of one citizen request.",
        },
        "ce_causationid": {
            "type": "string",
            "description": "Id of the event or request that caused this one.",
        },
        "traceparent": {"type": "string", "description": "W3C trace context."},
        "content-type": {"const": "application/json"},
    },
    "required": [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_subject",
        "ce_dataschema",
        "ce_eventversion",
        "ce_agency",
        "ce_site",
        "ce_correlationid",
        "content-type",
    ],
}


def message_id(cls: type[EventPayload]) -> str:
    return f"{cls.event_type}.v{cls.event_version}"


def _description(cls: type[EventPayload]) -> str:
    return " ".join(inspect.cleandoc(cls.__doc__ or "").split())


def _summary(cls: type[EventPayload]) -> str:
    return " ".join(inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].split())


def _personal_fields(schema: Json) -> list[str]:
    found = [f"{name}" for name, prop in schema.get("properties", {}).items() if prop.get(PERSONAL_DATA_KEY)]
    for def_name, definition in sorted(schema.get("$defs", {}).items()):
        found += [
            f"{def_name}.{n}" for n, p in definition.get("properties", {}).items() if p.get(PERSONAL_DATA_KEY)
        ]
    return found


def asyncapi_document(events: Sequence[type[EventPayload]]) -> Json:
    """The AsyncAPI 3.0 document of all topics, messages and operations."""
    by_topic: dict[str, list[type[EventPayload]]] = {}
    for cls in events:
        by_topic.setdefault(cls.topic, []).append(cls)
    channels: Json = {}
    operations: Json = {}
    messages: Json = {}
    for cls in events:
        schema = event_schema(cls)
        messages[message_id(cls)] = {
            "name": cls.event_type,
            "title": f"{cls.event_type} v{cls.event_version}",
            "summary": _summary(cls),
            "contentType": "application/json",
            "headers": {
                "allOf": [
                    {"$ref": "#/components/schemas/CloudEventsHeaders"},
                    {
                        "properties": {
                            "ce_type": {"const": cls.event_type},
                            "ce_eventversion": {"const": str(cls.event_version)},
                        }
                    },
                ]
            },
            "payload": {"schemaFormat": SCHEMA_FORMAT, "schema": {"$ref": f"./{schema_path(cls)}"}},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "description": topic(cls.topic).key},
                    "bindingVersion": "0.5.0",
                }
            },
            "x-personal-data-fields": _personal_fields(schema),
        }
    for spec in TOPICS:
        refs = {
            message_id(cls): {"$ref": f"#/components/messages/{message_id(cls)}"}
            for cls in by_topic.get(spec.name, [])
        }
        channels[spec.name] = {
            "address": spec.name,
            "title": spec.name,
            "description": spec.description,
            "messages": refs,
            "bindings": {
                "kafka": {
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": [spec.cleanup_policy],
                        "retention.ms": spec.retention_ms,
                    },
                    "bindingVersion": "0.5.0",
                }
            },
            "x-key": spec.key,
            "x-owner": spec.owner,
            "x-personal-data": spec.personal_data,
        }
        operations[f"send.{spec.name}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "summary": f"{spec.owner} publishes to {spec.name}.",
            "messages": [{"$ref": f"#/channels/{spec.name}/messages/{m}"} for m in refs],
            "x-service": spec.owner,
        }
    for group in CONSUMER_GROUPS:
        for name in group.topics:
            channel_messages = channels[name]["messages"]
            operations[f"receive.{group.group_id}.{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{name}"},
                "summary": f"{group.service} reads {name} as consumer group {group.group_id}.",
                "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in channel_messages],
                "bindings": {
                    "kafka": {
                        "groupId": {"type": "string", "enum": [group.group_id]},
                        "bindingVersion": "0.5.0",
                    }
                },
                "x-service": group.service,
                "x-dead-letter-topic": group.dead_letter_topic,
            }
    return {
        "asyncapi": "3.0.0",
        "id": "urn:mpp:platform:events",
        "info": {
            "title": "Mal Pelayanan Publik platform events",
            "version": CATALOGUE_VERSION,
            "description": (
                "Every event of the MPP platform. Records use the CloudEvents Kafka binding in binary mode: "
                "the value is the JSON payload, the envelope travels in ce_* headers and the key is the "
                f"aggregate id. Generated by `{GENERATE_COMMAND}`; do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {"CloudEventsHeaders": CLOUDEVENTS_HEADERS}},
    }


# --- CATALOGUE.md --------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _retention(ms: int) -> str:
    if ms < 0:
        return "forever"
    days = ms / (24 * 3600 * 1000)
    return f"{days:g} days"


def _field_description(prop: Json, defs: Json) -> str:
    """The field's description, else that of the type it refers to."""
    if "description" in prop:
        return str(prop["description"])
    for option in [prop, *prop.get("anyOf", [])]:
        if "$ref" in option:
            return str(defs.get(option["$ref"].rsplit("/", 1)[-1], {}).get("description", ""))
    return ""


def _fields_table(schema: Json, defs: Json) -> list[str]:
    lines = ["| Field | Type | Required | Personal data | Description |", "| --- | --- | --- | --- | --- |"]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        personal = "**yes**" if prop.get(PERSONAL_DATA_KEY) else "no"
        lines.append(
            f"| `{name}` | {_cell(describe(prop))} | {'yes' if name in required else 'no'} | {personal} "
            f"| {_cell(_field_description(prop, defs))} |"
        )
    return lines


def _types_section(schema: Json) -> list[str]:
    lines: list[str] = []
    for name, definition in sorted(schema.get("$defs", {}).items()):
        if "enum" in definition:
            values = ", ".join(f"`{v}`" for v in definition["enum"])
            lines += [
                f"- `{name}`: {values}"
                + (f". {_cell(definition['description'])}" if "description" in definition else "")
            ]
    objects = [(n, d) for n, d in sorted(schema.get("$defs", {}).items()) if "properties" in d]
    if lines:
        lines = ["", "Enumerations:", "", *lines]
    for name, definition in objects:
        lines += [
            "",
            f"Type `{name}`: {_cell(definition.get('description', ''))}",
            "",
            *_fields_table(definition, schema.get("$defs", {})),
        ]
    return lines


def catalogue_markdown(events: Sequence[type[EventPayload]]) -> str:
    out = [
        "# MPP event catalogue",
        "",
        f"Generated by `{GENERATE_COMMAND}` from the payload classes in `mpp.contracts.events`; do not edit by hand.",
        "",
        "Every event travels in the common envelope. On Kafka the record key is the aggregate id, the value is",
        "the JSON payload described below and the envelope attributes are CloudEvents headers (`ce_id`, `ce_type`,",
        "`ce_eventversion`, `ce_source`, `ce_time`, `ce_subject`, `ce_agency`, `ce_site`, `ce_correlationid`,",
        "`ce_causationid`, `traceparent`). Consumers ignore fields they do not know. Fields marked as personal data",
        "appear only on topics marked as carrying personal data, which only their listed readers consume.",
        "",
        "## Topics",
        "",
        "| Topic | Key | Partitions | Cleanup | Retention | Owner | Personal data | Description |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in TOPICS:
        out.append(
            f"| `{spec.name}` | {_cell(spec.key)} | {spec.partitions} | {spec.cleanup_policy} | "
            f"{_retention(spec.retention_ms)} | {_cell(spec.owner)} | {'**yes**' if spec.personal_data else 'no'} | "
            f"{_cell(spec.description)} |"
        )
    out += [
        "",
        "## Consumer groups",
        "",
        f"Each group has its own dead-letter topic ({DEAD_LETTER_PARTITIONS} partition, kept "
        f"{_retention(DEAD_LETTER_RETENTION_MS)}), with the reason in the record headers.",
        "",
        "| Group | Service | Topics | Dead-letter topic |",
        "| --- | --- | --- | --- |",
    ]
    for group in CONSUMER_GROUPS:
        topics = ", ".join(f"`{t}`" for t in group.topics)
        out.append(f"| `{group.group_id}` | {group.service} | {topics} | `{group.dead_letter_topic}` |")
    domains = sorted({cls.domain for cls in events})
    for domain in domains:
        out += ["", f"## Domain: {domain}"]
        for cls in (c for c in events if c.domain == domain):
            schema = event_schema(cls)
            spec = topic(cls.topic)
            out += [
                "",
                f"### {cls.event_type} v{cls.event_version}",
                "",
                f"Topic `{cls.topic}`{' (personal data)' if spec.personal_data else ''}, key: {spec.key}. "
                f"Schema: [`{schema_path(cls)}`]({schema_path(cls)}).",
                "",
                _description(cls),
                "",
                *_fields_table(schema, schema.get("$defs", {})),
                *_types_section(schema),
            ]
    return "\n".join(out) + "\n"


# --- writing and checking ------------------------------------------------------------------------


def generated_files() -> dict[str, str]:
    """Every generated file, by path relative to the output directory."""
    events = registered_events()
    files = {schema_path(cls): render_json(event_schema(cls)) for cls in events}
    files[ASYNCAPI_FILE] = render_json(asyncapi_document(events))
    files[CATALOGUE_FILE] = catalogue_markdown(events)
    return files


def _existing_schemas(out_dir: Path) -> set[str]:
    root = out_dir / SCHEMAS_DIR
    if not root.is_dir():
        return set()
    return {p.relative_to(out_dir).as_posix() for p in root.rglob("*.json")}


def incompatibilities(out_dir: Path, files: dict[str, str] | None = None) -> list[str]:
    """Breaking changes of the generated schemas against the committed ones in ``out_dir``."""
    files = files if files is not None else generated_files()
    problems: list[str] = []
    for path in sorted(_existing_schemas(out_dir)):
        if path not in files:
            problems.append(f"{path}: this event version is no longer registered; published events must stay")
            continue
        old = json.loads((out_dir / path).read_text(encoding="utf-8"))
        problems += [f"{path}: {p}" for p in check_compatible(old, json.loads(files[path]))]
    return problems


def stale_files(out_dir: Path, files: dict[str, str] | None = None) -> list[str]:
    """Generated files that are missing or differ in ``out_dir``."""
    files = files if files is not None else generated_files()
    stale: list[str] = []
    for path, content in sorted(files.items()):
        target = out_dir / path
        if not target.is_file():
            stale.append(f"{path}: missing")
        elif target.read_text(encoding="utf-8") != content:
            stale.append(f"{path}: out of date")
    stale += [f"{path}: not generated any more" for path in sorted(_existing_schemas(out_dir) - set(files))]
    return stale


def check(out_dir: Path = CONTRACTS_DIR) -> list[str]:
    """Everything wrong with the committed files in ``out_dir`` (empty when current and compatible)."""
    files = generated_files()
    return [f"incompatible: {p}" for p in incompatibilities(out_dir, files)] + [
        f"stale: {p}" for p in stale_files(out_dir, files)
    ]


def write(out_dir: Path = CONTRACTS_DIR, *, allow_breaking: bool = False) -> list[str]:
    """Write every generated file; returns the incompatibilities that stopped it (nothing is written then)."""
    files = generated_files()
    problems = incompatibilities(out_dir, files)
    if problems and not allow_breaking:
        return problems
    for path in sorted(_existing_schemas(out_dir) - set(files)):
        (out_dir / path).unlink()
    for path, content in files.items():
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.is_file() or target.read_text(encoding="utf-8") != content:
            target.write_text(content, encoding="utf-8")
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=GENERATE_COMMAND, description=__doc__.split("\n\n")[0] if __doc__ else ""
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale or incompatible")
    parser.add_argument(
        "--out", type=Path, default=CONTRACTS_DIR, help="output directory (default: contracts/)"
    )
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="write even when a schema changed incompatibly (only for a version never published)",
    )
    args = parser.parse_args(argv)
    out_dir: Path = args.out
    if out_dir == CONTRACTS_DIR and not (CONTRACTS_DIR / "src" / "mpp" / "contracts").is_dir():
        parser.error("not running from a repository checkout; pass --out DIR")
    if args.check:
        problems = check(out_dir)
        if problems:
            print(f"Contract files in {out_dir} are not current:", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            if any(p.startswith("incompatible") for p in problems):
                print(
                    "A published event version may only gain optional fields. Put a breaking change in a new "
                    "payload class with a new version.",
                    file=sys.stderr,
                )
            if any(p.startswith("stale") for p in problems):
                print(f"Run `{GENERATE_COMMAND}` and commit the result.", file=sys.stderr)
            return 1
        print(f"Contract files in {out_dir} are current.")
        return 0
    problems = write(out_dir, allow_breaking=args.allow_breaking)
    if problems:
        print("Not written: schemas changed incompatibly within their version:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        print(
            "Add a new payload class and version instead (or pass --allow-breaking for a version never published).",
            file=sys.stderr,
        )
        return 1
    print(f"Wrote {len(generated_files())} files to {out_dir}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
