"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every REST request and response body.

They mirror ``signaling.domain.models``' ``to_wire()`` shapes and the validation in the HTTP modules.
"""

from __future__ import annotations

from typing import Any

from signaling.domain.models import (
    AGENT_STATUSES,
    ATTACHMENT_KINDS,
    AUTHOR_KINDS,
    CONVERSATION_STATUSES,
    MESSAGE_KINDS,
    ROUTING_MODES,
)
from signaling.domain.requests import Kind, State

Json = dict[str, Any]

STR: Json = {"type": "string"}
NSTR: Json = {"type": ["string", "null"]}
INT: Json = {"type": "integer"}
BOOL: Json = {"type": "boolean"}
TIME: Json = {"type": "string", "format": "date-time"}
NTIME: Json = {"type": ["string", "null"], "format": "date-time"}
LANG: Json = {"type": "string", "maxLength": 16, "examples": ["en", "fr", "pt-BR"]}


def ref(name: str) -> Json:
    """A reference to ``#/components/schemas/<name>``."""
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str] | None = None, additional: bool = True, **props: Json) -> Json:
    """An object schema."""
    out: Json = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if not additional:
        out["additionalProperties"] = False
    return out


def array(items: Json) -> Json:
    return {"type": "array", "items": items}


_FLOW_STEP = obj(
    ["id", "question"],
    additional=False,
    id={"type": "string", "maxLength": 64},
    question={"type": "string", "maxLength": 1000},
    buttons={**array({"type": "string", "maxLength": 200}), "maxItems": 20, "uniqueItems": True},
    free_text={"type": "boolean", "default": False, "description": "The customer may type an answer."},
)
_FLOW_STEP["description"] = "A question with buttons, free text, or both (at least one)."

SCHEMAS: dict[str, Json] = {
    "Error": obj(
        ["ok", "error"],
        ok={"const": False},
        error=obj(
            ["code", "message"],
            code={
                "type": "string",
                "enum": [
                    "invalid",
                    "unauthorized",
                    "forbidden",
                    "not_found",
                    "conflict",
                    "too_large",
                    "rate_limited",
                    "unavailable",
                    "internal",
                ],
            },
            message=STR,
            details={"type": "object"},
        ),
    ),
    "RateLimitedError": obj(
        ["ok", "error"],
        ok={"const": False},
        error=obj(
            ["code", "message", "details"],
            code={"const": "rate_limited"},
            message=STR,
            details=obj(
                ["retry_after_s"],
                retry_after_s={**INT, "minimum": 1, "description": "Seconds to wait (as `Retry-After`)."},
            ),
        ),
    ),
    "Team": obj(
        ["id", "name", "routing"],
        id=STR,
        name=STR,
        routing={"enum": list(ROUTING_MODES)},
        created_at=TIME,
        agent_ids=array(STR),
    ),
    "Agent": obj(
        ["id", "email", "name", "team_ids", "is_admin"],
        id=STR,
        email=STR,
        name=STR,
        team_ids=array(STR),
        is_admin=BOOL,
        capacity=INT,
        locale=STR,
        status={"enum": list(AGENT_STATUSES)},
    ),
    "Visitor": obj(
        ["id"], id=STR, name=STR, email=STR, user_id=STR, verified=BOOL, locale=STR, created_at=TIME
    ),
    "Author": obj(["kind", "id"], kind={"enum": list(AUTHOR_KINDS)}, id=STR, name=STR),
    "Attachment": obj(
        ["id", "name", "mime", "size", "url"],
        id=STR,
        name=STR,
        mime=STR,
        size=INT,
        kind={"enum": list(ATTACHMENT_KINDS)},
        url=STR,
        thumbnail_url=STR,
    ),
    "Conversation": obj(
        ["id", "visitor", "status", "team_id", "created_at", "updated_at", "last_seq"],
        id=STR,
        visitor=ref("Visitor"),
        status={"enum": list(CONVERSATION_STATUSES)},
        assignee_id=NSTR,
        assignee={"oneOf": [obj(["id", "name"], id=STR, name=STR), {"type": "null"}]},
        team_id=STR,
        created_at=TIME,
        updated_at=TIME,
        last_seq=INT,
        unread={"type": "integer", "description": "Agents only."},
        page_url=STR,
        language=STR,
        receipts={"type": "object"},
        last_message_at=NTIME,
        last_message_preview={"type": "string", "description": "Agents only."},
        last_message_system={
            "oneOf": [obj(["code", "params"], code=STR, params={"type": "object"}), {"type": "null"}],
            "description": "Agents only: `{code, params}` of the system message the preview was made from "
            "(its English text), so that clients render the preview in their language; null otherwise.",
        },
    ),
    "Message": obj(
        ["id", "conversation_id", "seq", "client_id", "author", "kind", "body", "created_at"],
        id=STR,
        conversation_id=STR,
        seq=INT,
        client_id=STR,
        author=ref("Author"),
        kind={"enum": list(MESSAGE_KINDS)},
        body=STR,
        created_at=TIME,
        attachment=ref("Attachment"),
        article=ref("Article"),
        flow=ref("Flow"),
        flow_answer=obj(None, flow_id=STR, step_id=STR, question=STR, answer=STR),
        textblock_id=STR,
        code={"type": "string", "description": "System messages: what happened."},
        params={"type": "object", "description": "System messages: the values of the code's text."},
        request_id=STR,
    ),
    "Request": obj(
        ["id", "conversation_id", "kind", "state", "requested_by", "created_at", "updated_at"],
        id=STR,
        conversation_id=STR,
        kind={"enum": [k.value for k in Kind]},
        state={"enum": [s.value for s in State]},
        requested_by=STR,
        created_at=TIME,
        updated_at=TIME,
        expires_at=NTIME,
        accepted_at=NTIME,
        active_at=NTIME,
        ended_at=NTIME,
        reason=STR,
        record={"type": "boolean", "description": "The call's media is recorded (the prompt said so)."},
    ),
    "TextBlock": obj(
        ["id", "shortcut", "title", "body"],
        id=STR,
        shortcut=STR,
        title=STR,
        body=STR,
        language=STR,
        team_id=NSTR,
    ),
    "Article": obj(
        ["id", "title", "summary", "url"],
        id=STR,
        title=STR,
        summary=STR,
        url={"type": "string", "format": "uri"},
        body=STR,
        language=STR,
    ),
    "FlowStep": _FLOW_STEP,
    "Flow": obj(["id", "name", "steps"], id=STR, name=STR, steps=array(ref("FlowStep")), language=STR),
    "Sync": obj(
        ["conversation", "messages", "requests"],
        conversation=ref("Conversation"),
        messages=array(ref("Message")),
        requests=array(ref("Request")),
        has_more=BOOL,
    ),
    "Transcript": obj(
        ["audience", "conversation", "messages", "requests"],
        audience={"enum": ["agent", "customer"]},
        generated_at=TIME,
        conversation=ref("Conversation"),
        messages=array(ref("Message")),
        requests=array(ref("Request")),
    ),
    # -- request bodies -----------------------------------------------------------------------------------
    "LoginRequest": obj(["email", "password"], email=STR, password=STR),
    "VisitorRequest": obj(
        None,
        name={"type": "string", "maxLength": 120},
        email={"type": "string", "maxLength": 254},
        user_id={"type": "string", "maxLength": 200},
        user_hash=STR,
        locale=LANG,
    ),
    "UploadForm": obj(
        ["conversation_id", "file"],
        conversation_id=STR,
        file={"type": "string", "format": "binary", "description": "At most the server's upload cap."},
        kind={
            "enum": list(ATTACHMENT_KINDS),
            "description": "What the client means to send; refused if the content is not that.",
        },
    ),
    "AgentCreate": obj(
        ["email", "password"],
        additional=False,
        email={"type": "string", "format": "email"},
        name={"type": "string", "maxLength": 120},
        password={"type": "string", "minLength": 4},
        team_ids=array(STR),
        is_admin=BOOL,
        capacity={"type": "integer", "minimum": 0, "maximum": 1000},
        locale=LANG,
    ),
    "AgentUpdate": obj(
        None,
        additional=False,
        email={"type": "string", "format": "email"},
        name={"type": "string", "maxLength": 120},
        password={"type": "string", "minLength": 4},
        team_ids=array(STR),
        is_admin=BOOL,
        capacity={"type": "integer", "minimum": 0, "maximum": 1000},
        locale=LANG,
    ),
    "AgentSelfUpdate": obj(
        None,
        additional=False,
        name={"type": "string", "maxLength": 120},
        locale=LANG,
        password={"type": "string", "minLength": 4},
        current_password={"type": "string", "description": "Required with password."},
    ),
    "VisitorUpdate": obj(
        None,
        additional=False,
        name={"type": "string", "maxLength": 120},
        email={"type": "string", "format": "email"},
        locale=LANG,
    ),
    "TeamCreate": obj(
        ["name"],
        additional=False,
        name={"type": "string", "maxLength": 64},
        routing={"enum": list(ROUTING_MODES), "default": "manual"},
    ),
    "TeamUpdate": obj(
        None,
        additional=False,
        name={"type": "string", "maxLength": 64},
        routing={"enum": list(ROUTING_MODES)},
    ),
    "TextBlockCreate": obj(
        ["shortcut", "title", "body"],
        additional=False,
        shortcut={"type": "string", "maxLength": 40, "description": "One word."},
        title={"type": "string", "maxLength": 200},
        body=STR,
        language=LANG,
        team_id=NSTR,
    ),
    "TextBlockUpdate": obj(
        None,
        additional=False,
        shortcut={"type": "string", "maxLength": 40},
        title={"type": "string", "maxLength": 200},
        body=STR,
        language=LANG,
        team_id=NSTR,
    ),
    "ArticleCreate": obj(
        ["title", "url"],
        additional=False,
        title={"type": "string", "maxLength": 200},
        summary={"type": "string", "maxLength": 1000},
        url={"type": "string", "format": "uri", "description": "Absolute http(s) URL."},
        body=STR,
        language=LANG,
    ),
    "ArticleUpdate": obj(
        None,
        additional=False,
        title={"type": "string", "maxLength": 200},
        summary={"type": "string", "maxLength": 1000},
        url={"type": "string", "format": "uri"},
        body=STR,
        language=LANG,
    ),
    "FlowCreate": obj(
        ["name", "steps"],
        additional=False,
        name={"type": "string", "maxLength": 200},
        steps={**array(ref("FlowStep")), "minItems": 1, "maxItems": 50},
        language=LANG,
    ),
    "FlowUpdate": obj(
        None,
        additional=False,
        name={"type": "string", "maxLength": 200},
        steps={**array(ref("FlowStep")), "minItems": 1, "maxItems": 50},
        language=LANG,
    ),
}
