"""Small builders of OpenAPI 3.1 data shared by the documents (webapi.openapi_doc and
webapi.openapi_banks): references, media types, problem answers."""
from __future__ import annotations

from typing import TypeAlias

JsonValue: TypeAlias = "str | int | float | bool | None | list[JsonValue] | dict[str, JsonValue]"
Json: TypeAlias = dict[str, JsonValue]

PROBLEM_TYPE = "application/problem+json"       # RFC 9457 §3


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def or_null(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def binary(description: str) -> Json:
    return {"type": "string", "format": "binary", "description": description}


def date_time(description: str, nullable: bool = False) -> Json:
    return {"type": ["string", "null"] if nullable else "string", "format": "date-time",
            "description": description}


def hex_string(description: str, length: int | None = None) -> Json:
    pattern = f"^[0-9a-f]{{{length}}}$" if length else "^[0-9a-f]+$"
    return {"type": "string", "pattern": pattern, "description": description}


def json_body(schema: Json, examples: Json | None = None) -> Json:
    media: Json = {"schema": schema}
    if examples:
        media["examples"] = examples
    return {"application/json": media}


def header(description: str, required: bool = False) -> Json:
    return {"description": description, "required": required, "schema": {"type": "string"}}


def hdr(name: str) -> Json:
    return {"$ref": f"#/components/headers/{name}"}


def resp(name: str) -> Json:
    return {"$ref": f"#/components/responses/{name}"}


def problem_response(description: str, example: Json) -> Json:
    return {"description": description,
            "content": {PROBLEM_TYPE: {"schema": ref("Problem"), "examples": {"problem": {"value": example}}}}}


def example_problem(status: int, code: str, title: str, detail: str, **extra: str) -> Json:
    body: Json = {"type": f"urn:udun:problem:{code}", "code": code, "title": title, "status": status,
                  "detail": detail}
    body.update(extra)
    return body
