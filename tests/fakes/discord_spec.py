"""Discord's official OpenAPI description, turned into route matchers and JSON Schema validators."""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: Environment variable that points at ``openapi.json`` when it lives somewhere unusual.
SPEC_ENV_VAR = "MEMEBOT_DISCORD_OPENAPI"

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent.parent
# A copy next to the fake wins (what CI would vendor); the workspace's shared copy is the fallback.
_CANDIDATES = (
    _HERE / "discord-api-spec" / "openapi.json",
    _REPO.parent / "shared" / "discord-api-spec" / "openapi.json",
)

_REQUEST_URI = "urn:discord-openapi:request"
_RESPONSE_URI = "urn:discord-openapi:response"
_JSON = "application/json"


class SpecNotFoundError(FileNotFoundError):
    """Discord's ``openapi.json`` is in none of the places the fake looks."""


def find_spec() -> Path:
    """Return the path of Discord's ``openapi.json``: ``$MEMEBOT_DISCORD_OPENAPI`` or a known place."""
    override = os.environ.get(SPEC_ENV_VAR)
    candidates = (Path(override),) if override else _CANDIDATES
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise SpecNotFoundError(
        f"Discord's OpenAPI spec (discord/discord-api-spec, specs/openapi.json) was not found; looked in "
        f"{looked}. Put it there or set {SPEC_ENV_VAR}."
    )


def load_spec(path: Path | None = None) -> DiscordSpec:
    """Load and compile the spec once per process (it is 1 MB of JSON)."""
    return _load((path or find_spec()).resolve())


@functools.cache
def _load(path: Path) -> DiscordSpec:
    return DiscordSpec(json.loads(path.read_text(encoding="utf-8")))


def _pointer(*parts: str) -> str:
    """A JSON pointer (RFC 6901) from raw keys."""
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one templated path of the spec."""

    method: str
    template: str
    segments: tuple[str, ...]
    query: Mapping[str, Mapping[str, Any]]
    body_schema: str | None
    body_required: bool
    needs_auth: bool
    responses: Mapping[str, str | None]

    @property
    def literal_segments(self) -> int:
        """How many segments are fixed text; the most specific template wins (``@me`` over ``{id}``)."""
        return sum(1 for s in self.segments if not s.startswith("{"))

    def match(self, segments: tuple[str, ...]) -> dict[str, str] | None:
        """The path parameters when ``segments`` fit this template, else None."""
        if len(segments) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for mine, theirs in zip(self.segments, segments, strict=True):
            if mine.startswith("{"):
                params[mine[1:-1]] = theirs
            elif mine != theirs:
                return None
        return params


class DiscordSpec:
    """The REST half of Discord's API description: which routes exist and what they take and return."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document
        self._operations: dict[str, list[Operation]] = {}
        for template, item in document["paths"].items():
            for method, operation in item.items():
                if method in {"get", "put", "post", "patch", "delete"}:
                    op = self._operation(method.upper(), template, item, operation)
                    self._operations.setdefault(op.method, []).append(op)
        self._request_registry = self._registry(_REQUEST_URI, _lenient(document))
        self._response_registry = self._registry(_RESPONSE_URI, document)
        self._validators: dict[tuple[str, str], Draft202012Validator] = {}

    @staticmethod
    def _registry(uri: str, document: dict[str, Any]) -> Registry[Any]:
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        registry: Registry[Any] = Registry().with_resource(uri, resource)
        return registry

    def _operation(
        self, method: str, template: str, item: Mapping[str, Any], operation: Mapping[str, Any]
    ) -> Operation:
        query = {
            p["name"]: self._deref(p.get("schema", {}))
            for p in [*item.get("parameters", []), *operation.get("parameters", [])]
            if p.get("in") == "query"
        }
        body = operation.get("requestBody", {})
        body_schema = None
        if _JSON in body.get("content", {}):
            body_schema = _pointer(
                "paths", template, method.lower(), "requestBody", "content", _JSON, "schema"
            )
        security = operation.get("security", [{}])
        return Operation(
            method=method,
            template=template,
            segments=tuple(template.strip("/").split("/")),
            query=query,
            body_schema=body_schema,
            body_required=bool(body.get("required")),
            needs_auth={} not in security,
            responses=self._responses(template, method.lower(), operation.get("responses", {})),
        )

    def _responses(self, template: str, method: str, responses: Mapping[str, Any]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for status, response in responses.items():
            base: tuple[str, ...] = ("paths", template, method, "responses", status)
            if "$ref" in response:
                base = tuple(response["$ref"].removeprefix("#/").split("/"))
                response = self._deref(response)
            has_json = _JSON in response.get("content", {})
            found[status] = _pointer(*base, "content", _JSON, "schema") if has_json else None
        return found

    def _deref(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow a local ``$ref`` (``#/components/...``) one level; other nodes come back unchanged."""
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return node
        target: Any = self._document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        return self._deref(target)

    def match(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The operation serving ``method path`` (path relative to ``/api/v10``) and its parameters."""
        segments = tuple(path.strip("/").split("/"))
        best: tuple[Operation, dict[str, str]] | None = None
        for op in self._operations.get(method.upper(), []):
            params = op.match(segments)
            if params is not None and (best is None or op.literal_segments > best[0].literal_segments):
                best = (op, params)
        return best

    def operation(self, method: str, template: str) -> Operation:
        """The operation for an exact spec template (raises KeyError when the spec has none)."""
        for op in self._operations.get(method.upper(), []):
            if op.template == template:
                return op
        raise KeyError(f"{method} {template} is not in Discord's OpenAPI spec")

    def allowed_methods(self, path: str) -> list[str]:
        """The methods the spec documents for a concrete path (to explain a 405)."""
        return sorted(m for m in self._operations if self.match(m, path) is not None)

    def check_query(self, op: Operation, query: Mapping[str, str]) -> list[str]:
        """Problems with the query string: unknown names, values of the wrong type."""
        problems = []
        for name, value in query.items():
            schema = op.query.get(name)
            if schema is None:
                known = ", ".join(sorted(op.query)) or "none"
                problems.append(f"unknown query parameter {name!r} (documented: {known})")
            elif not _query_value_ok(self._deref(schema), value):
                problems.append(f"query parameter {name}={value!r} does not fit {dict(schema)}")
        return problems

    def check_body(self, op: Operation, body: Any) -> list[str]:
        """Problems with a JSON body (``None``: no body), with the integer-snowflake allowance."""
        if body is None:
            return ["a JSON body is required"] if op.body_required else []
        if op.body_schema is None:
            return ["this route takes no JSON body"]
        return self._validate(_REQUEST_URI, op.body_schema, body, self._request_registry)

    def check_response(self, op: Operation, status: int, body: Any) -> list[str]:
        """Problems with an answer the fake gives: undocumented status, missing or wrong body."""
        key = str(status) if str(status) in op.responses else f"{status // 100}XX"
        if key not in op.responses:
            return [f"status {status} is not documented (documented: {', '.join(op.responses)})"]
        pointer = op.responses[key]
        if pointer is None:
            return [] if body is None else [f"status {status} is documented without a body"]
        if body is None:
            return [f"status {status} is documented with a JSON body, none was sent"]
        return self._validate(_RESPONSE_URI, pointer, body, self._response_registry)

    def check_schema(self, name: str, instance: Any) -> list[str]:
        """Problems with ``instance`` as the named component schema (strict, as Discord sends it)."""
        pointer = _pointer("components", "schemas", name)
        return self._validate(_RESPONSE_URI, pointer, instance, self._response_registry)

    def _validate(self, uri: str, pointer: str, instance: Any, registry: Registry[Any]) -> list[str]:
        key = (uri, pointer)
        validator = self._validators.get(key)
        if validator is None:
            ref = f"{uri}#{quote(pointer, safe='/~')}"
            validator = self._validators[key] = Draft202012Validator({"$ref": ref}, registry=registry)
        error = best_match(validator.iter_errors(instance))
        return [] if error is None else [_describe(error)]


def _lenient(document: dict[str, Any]) -> dict[str, Any]:
    """A copy whose snowflakes also accept integers: discord.py sends ``attachments[].id``,
    ``message_reference`` ids and allowed-mention ids as ints, and Discord accepts them."""
    lenient = copy.deepcopy(document)
    schemas = lenient["components"]["schemas"]
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    return lenient


def _query_value_ok(schema: Mapping[str, Any], value: str) -> bool:
    kind = schema.get("type")
    if kind == "boolean":
        return value.lower() in {"true", "false", "1", "0"}
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    pattern = schema.get("pattern")
    return pattern is None or re.search(pattern, value) is not None


def _describe(error: ValidationError) -> str:
    """One readable line: where in the document, and what is wrong (long instances cut short)."""
    message = error.message if len(error.message) <= 300 else error.message[:297] + "..."
    return f"{error.json_path}: {message}"
