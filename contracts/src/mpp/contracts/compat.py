"""Compatibility of two JSON Schemas of the same event version.

Within one version only optional fields may be added (house style rule 6). :func:`check_compatible`
compares a schema with its committed predecessor and lists every change that would break a producer
or a consumer built against the old one: a removed field, a retyped field (type, format, reference,
enum values removed, constraints tightened, nullability changed), a field that became required and a
new required field. It walks nested objects, array items and every ``$defs`` entry.

Adding enum values is allowed here, as is loosening a bound: consumers on an older version of this
package will reject an unknown enum value, so deploy consumers before producers use it.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_ALTERNATIVES = ("anyOf", "oneOf", "allOf")


def check_compatible(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Human-readable problems that make ``new_schema`` incompatible with ``old_schema`` (empty if none)."""
    problems: list[str] = []
    name = str(old_schema.get("title", "schema"))
    if old_schema.get("x-topic") != new_schema.get("x-topic"):
        problems.append(
            f"{name}: moved from topic {old_schema.get('x-topic')} to {new_schema.get('x-topic')}"
        )
    _compare(old_schema, new_schema, name, problems)
    old_defs: dict[str, Schema] = old_schema.get("$defs", {})
    new_defs: dict[str, Schema] = new_schema.get("$defs", {})
    for def_name in sorted(old_defs):
        if def_name in new_defs:
            _compare(old_defs[def_name], new_defs[def_name], f"{name} $defs.{def_name}", problems)
    return problems


def _compare(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    if "$ref" in old or "$ref" in new:
        if old.get("$ref") != new.get("$ref"):
            problems.append(f"{path}: type changed from {describe(old)} to {describe(new)}")
        return
    for key in _ALTERNATIVES:
        if key in old or key in new:
            _compare_alternatives(old, new, key, path, problems)
            return
    if _types(old) != _types(new):
        problems.append(f"{path}: type changed from {describe(old)} to {describe(new)}")
        return
    _compare_constraints(old, new, path, problems)
    _compare_members(old, new, path, problems)


def _compare_constraints(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    for key in ("format", "pattern", "const"):
        if old.get(key) != new.get(key):
            problems.append(f"{path}: {key} changed from {old.get(key)!r} to {new.get(key)!r}")
    if "enum" in new:
        removed = (
            [v for v in old.get("enum", []) if v not in new["enum"]] if "enum" in old else ["(any value)"]
        )
        if removed:
            problems.append(f"{path}: enum values removed: {', '.join(map(str, removed))}")
    _compare_bounds(old, new, path, problems)


def _compare_members(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    if "properties" in old or "properties" in new:
        _compare_object(old, new, path, problems)
    if isinstance(old.get("additionalProperties"), dict) and isinstance(
        new.get("additionalProperties"), dict
    ):
        _compare(old["additionalProperties"], new["additionalProperties"], f"{path}[*]", problems)
    if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
        _compare(old["items"], new["items"], f"{path}[]", problems)
    old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
    if len(old_prefix) != len(new_prefix):
        problems.append(f"{path}: tuple length changed from {len(old_prefix)} to {len(new_prefix)}")
    else:
        for i, (o, n) in enumerate(zip(old_prefix, new_prefix, strict=True)):
            _compare(o, n, f"{path}[{i}]", problems)


def _compare_object(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    old_props: dict[str, Schema] = old.get("properties", {})
    new_props: dict[str, Schema] = new.get("properties", {})
    for field, old_prop in old_props.items():
        if field not in new_props:
            problems.append(f"{path}: field '{field}' was removed")
        else:
            _compare(old_prop, new_props[field], f"{path}.{field}", problems)
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    for field in sorted(new_required - old_required):
        if field in old_props:
            problems.append(f"{path}: field '{field}' became required")
        else:
            problems.append(
                f"{path}: new field '{field}' is required (a field added within a version must be optional)"
            )
    if old.get("additionalProperties", True) is not False and new.get("additionalProperties") is False:
        problems.append(f"{path}: no longer accepts unknown fields")


def _compare_alternatives(old: Schema, new: Schema, key: str, path: str, problems: list[str]) -> None:
    old_options, new_options = old.get(key), new.get(key)
    if old_options is None or new_options is None or len(old_options) != len(new_options):
        problems.append(f"{path}: type changed from {describe(old)} to {describe(new)}")
        return
    for i, (o, n) in enumerate(zip(old_options, new_options, strict=True)):
        _compare(o, n, f"{path} ({key}[{i}])", problems)


def _compare_bounds(old: Schema, new: Schema, path: str, problems: list[str]) -> None:
    for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
        if key not in new:
            continue
        if key not in old:
            problems.append(f"{path}: new constraint {key} {new[key]}")
        elif (new[key] > old[key]) if key in _LOWER_BOUNDS else (new[key] < old[key]):
            problems.append(f"{path}: {key} tightened from {old[key]} to {new[key]}")


def _types(schema: Schema) -> frozenset[str]:
    declared = schema.get("type")
    if declared is None:
        return frozenset()
    return frozenset([declared] if isinstance(declared, str) else declared)


def describe(schema: Schema) -> str:
    """A short readable type of a schema, e.g. ``string (date-time)``, ``array of Score`` or ``Channel | null``."""
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    for key in _ALTERNATIVES:
        if key in schema:
            return " | ".join(describe(option) for option in schema[key])
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    types = sorted(_types(schema)) or ["any"]
    text = " | ".join(types)
    if "format" in schema:
        text += f" ({schema['format']})"
    if "array" in types:
        if "prefixItems" in schema:
            text = "tuple of (" + ", ".join(describe(s) for s in schema["prefixItems"]) + ")"
        elif isinstance(schema.get("items"), dict):
            text = f"array of {describe(schema['items'])}"
    if "object" in types and isinstance(schema.get("additionalProperties"), dict):
        text = f"map of {describe(schema['additionalProperties'])}"
    return text
