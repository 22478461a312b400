"""Builders of the OpenAPI document's operations (:mod:`rtc_server.http.openapi`): an operation with its
answers and the stable error codes each status carries, parameters, and the five routes of a directory
collection."""

from __future__ import annotations

from typing import Any

from rtc_server.http.openapi_schemas import ref

Json = dict[str, Any]

ERRORS = {
    400: ("invalid", "The payload or a parameter is malformed (`invalid`)."),
    401: ("unauthorized", "No valid token (`unauthorized`)."),
    403: ("forbidden", "The caller may not do this (`forbidden`)."),
    404: ("not_found", "No such thing, or the caller may not know it exists (`not_found`)."),
    409: ("conflict", "The state changed or the value is taken (`conflict`)."),
    413: ("too_large", "Above a size cap (`too_large`)."),
    416: ("", "The requested byte range is outside the file (no body)."),
    429: (
        "rate_limited",
        "Too many calls of this kind from the caller's address (`rate_limited`); "
        "`details.retry_after_s` and the `Retry-After` header say when to try again.",
    ),
    503: ("unavailable", "A dependency cannot serve the call now."),
}
AGENT: list[Json] = [{"bearer": []}]
ANYONE: list[Json] = [{"bearer": []}]
MEDIA_AUTH: list[Json] = [{"bearer": []}, {"token_query": []}]
PUBLIC: list[Json] = []


def json_content(schema: Json) -> Json:
    """A JSON body of ``schema``."""
    return {"application/json": {"schema": schema}}


def obj(required: list[str] | None = None, **props: Json) -> Json:
    """An object schema with ``props`` (and the ``required`` ones)."""
    out: Json = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def op(
    summary: str,
    tag: str,
    *,
    security: list[Json],
    ok: int = 200,
    result: Json | None = None,
    body: Json | None = None,
    params: list[Json] | None = None,
    errors: tuple[int, ...] = (),
    description: str = "",
    content: Json | None = None,
) -> Json:
    """One operation: its summary, tag, security, body, parameters and every answer (``ok``, the
    ``errors`` given, 401 when it needs a token)."""
    operation: Json = {"summary": summary, "tags": [tag], "security": security}
    if description:
        operation["description"] = description
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": json_content(body)}
    responses: Json = {}
    if ok == 204:
        responses["204"] = {"description": "Done (no body)."}
    else:
        responses[str(ok)] = {
            "description": "Success.",
            "content": content if content is not None else json_content(result or {"type": "object"}),
        }
    codes = set(errors)
    if security:
        codes.add(401)
    for code in sorted(codes):
        if code == 416:  # no body: the unsatisfiable range is in ``Content-Range: bytes */<size>``
            responses["416"] = {
                "description": ERRORS[code][1],
                "headers": {"Content-Range": {"schema": {"type": "string"}}},
            }
        elif code == 429:
            responses["429"] = rate_limited()
        else:
            responses[str(code)] = {"description": ERRORS[code][1], "content": json_content(ref("Error"))}
    operation["responses"] = responses
    return operation


def rate_limited() -> Json:
    """The 429 answer of the rate-limit middleware (``rtc_server/http/ratelimit.py``)."""
    return {
        "description": ERRORS[429][1],
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before calling again.",
                "schema": {"type": "integer", "minimum": 1},
            }
        },
        "content": json_content(ref("RateLimitedError")),
    }


def path_id(what: str) -> Json:
    """The ``{id}`` path parameter."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": f"The {what}'s id.",
        "schema": {"type": "string"},
    }


def query(name: str, description: str, schema: Json | None = None, required: bool = False) -> Json:
    """A query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def crud(
    name: str, singular: str, schema: str, create: Json, update: Json, extra_list: list[Json], note: str
) -> dict[str, Json]:
    """List, create, read, change and delete of a directory collection ``/api/<name>``."""
    one = obj([singular], **{singular: ref(schema)})
    many = obj([name], **{name: {"type": "array", "items": ref(schema)}})
    tag = name
    return {
        f"/api/{name}": {
            "get": op(
                f"List {name}",
                tag,
                security=AGENT,
                result=many,
                params=extra_list,
                description=f"Any agent. {note}",
            ),
            "post": op(
                f"Create a {singular}",
                tag,
                security=AGENT,
                ok=201,
                result=one,
                body=create,
                errors=(400, 403, 404, 409),
                description="Admins only.",
            ),
        },
        f"/api/{name}/{{id}}": {
            "get": op(
                f"One {singular}", tag, security=AGENT, result=one, params=[path_id(singular)], errors=(404,)
            ),
            "patch": op(
                f"Change a {singular}",
                tag,
                security=AGENT,
                result=one,
                body=update,
                params=[path_id(singular)],
                errors=(400, 403, 404, 409),
                description="Admins only; only the fields given change.",
            ),
            "delete": op(
                f"Delete a {singular}",
                tag,
                security=AGENT,
                ok=204,
                params=[path_id(singular)],
                errors=(403, 404),
                description="Admins only.",
            ),
        },
    }
