"""The OpenAPI 3.1 document of the DataHub REST API (the quota endpoints), served at
``{prefix}api/openapi.json``.

``paths(prefix)`` is this feature's part; `openapi_document` wraps it into a whole
document, so other features can add their paths the same way.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .policy import LIMITS

_ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad request (the message says what to fix)",
        403: "Not signed in, or not an administrator",
        404: "No such policy",
    }
    return {str(code): _json(_ERROR, text[code]) for code in codes}


def _limit_schema(kind: str) -> dict[str, Any]:
    if kind == "names":
        return {"type": ["array", "null"], "items": {"type": "string"}}
    number = "integer" if kind in ("count", "bytes") else "number"
    examples = {"bytes": "10GB", "seconds": "5m"}
    schema: dict[str, Any] = {"type": [number, "string", "null"], "minimum": 0}
    if kind in examples:
        schema["examples"] = [examples[kind]]
    return schema


def components() -> dict[str, Any]:
    limits = {
        name: {**_limit_schema(spec.kind), "description": f"{spec.help} null: unlimited."}
        for name, spec in LIMITS.items()
    }
    obj = {"type": "object"}
    return {
        "securitySchemes": {
            "hubToken": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "A JupyterHub API token: `Authorization: token <token>` "
                "(or `Bearer <token>`). The token needs access:services!service=datahub.",
            },
            "hubCookie": {
                "type": "apiKey",
                "in": "cookie",
                "name": "service-datahub",
                "description": "The service's sign-in cookie (pages); writes then need the "
                "hub's XSRF token (`_xsrf` argument or `X-XSRFToken` header).",
            },
        },
        "schemas": {
            "Error": {
                "type": "object",
                "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
                "required": ["status", "message"],
            },
            "Limits": {
                "type": "object",
                "description": "The limits a policy sets. A limit left out is inherited; "
                "null means unlimited.",
                "properties": limits,
                "additionalProperties": False,
            },
            "PolicyBody": {
                "type": "object",
                "properties": {"limits": {"$ref": "#/components/schemas/Limits"}},
                "required": ["limits"],
            },
            "PolicyChange": {
                "type": "object",
                "properties": {
                    "scope": {"enum": ["default", "group", "user"]},
                    "name": {"type": "string"},
                    "before": {"type": ["object", "null"]},
                    "after": {"type": ["object", "null"]},
                },
            },
            "Usage": {
                "type": "object",
                "properties": {
                    key: {"type": "integer"}
                    for key in (
                        "queries",
                        "cpu_ms",
                        "bytes_scanned",
                        "refused",
                        "cancelled",
                        "running",
                        "queued",
                    )
                },
            },
            "UserQuota": {
                "type": "object",
                "properties": {
                    "user": {"type": "string"},
                    "groups": {"type": "array", "items": {"type": "string"}},
                    "limits": {"$ref": "#/components/schemas/Limits"},
                    "sources": {
                        "type": "object",
                        "description": "Per limit, the policy it comes from ('user alice', "
                        "'group analysts', 'default', 'configuration', 'built-in').",
                        "additionalProperties": {"type": "string"},
                    },
                    "usage": {"$ref": "#/components/schemas/Usage"},
                    "lines": {"type": "array", "items": obj},
                    "day": {"type": "string", "format": "date"},
                    "resets_at": {"type": "string", "format": "date-time"},
                    "resets": {"type": "string", "examples": ["00:00 UTC"]},
                    "contact": {"type": "string"},
                },
            },
        },
    }


def paths(prefix: str) -> dict[str, Any]:
    """The quota feature's paths, under *prefix* (``/services/datahub/``)."""
    api = f"{prefix}api/quota"
    auth = [{"hubToken": []}, {"hubCookie": []}]
    policy_params = [
        {"name": "scope", "in": "path", "required": True, "schema": {"enum": ["group", "user"]}},
        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    ]
    body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PolicyBody"}}},
    }
    change = _json({"$ref": "#/components/schemas/PolicyChange"})

    def policy_ops(params: list[dict[str, Any]], what: str) -> dict[str, Any]:
        common = {"tags": ["policies"], "security": auth, "parameters": params}
        return {
            "get": {
                **common,
                "summary": f"The stored policy of {what}",
                "responses": {"200": _json(obj_limits), **_errors(403, 404)},
            },
            "put": {
                **common,
                "summary": f"Create or replace the policy of {what} (audited)",
                "requestBody": body,
                "responses": {"200": change, **_errors(400, 403)},
            },
            "patch": {
                **common,
                "summary": f"Change some limits of the policy of {what} (audited)",
                "requestBody": body,
                "responses": {"200": change, **_errors(400, 403)},
            },
            "delete": {
                **common,
                "summary": f"Delete the policy of {what}, so it inherits again (audited)",
                "responses": {"200": change, **_errors(403, 404)},
            },
        }

    obj_limits = {
        "type": "object",
        "properties": {
            "scope": {"type": "string"},
            "name": {"type": "string"},
            "limits": {"$ref": "#/components/schemas/Limits"},
        },
    }
    listing = {"type": "object"}
    days_param = {
        "name": "days",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "default": 30},
    }
    limit_param = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
    }
    user_param = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]

    def admin_get(summary: str, tag: str, params: list | None = None) -> dict[str, Any]:
        return {
            "get": {
                "tags": [tag],
                "summary": summary,
                "security": auth,
                "parameters": params or [],
                "responses": {"200": _json(listing), **_errors(400, 403)},
            }
        }

    return {
        f"{api}/me": {
            "get": {
                "tags": ["quota"],
                "summary": "Your limits (and where each comes from) and today's usage",
                "security": auth,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/UserQuota"}),
                    **_errors(403),
                },
            }
        },
        f"{api}/policies": admin_get("Every stored policy, and the limits' meanings", "policies"),
        f"{api}/policies/default": policy_ops([], "everyone (the default)"),
        f"{api}/policies/{{scope}}/{{name}}": policy_ops(policy_params, "a group or user"),
        f"{api}/users": admin_get("Every known user with today's usage against limits", "usage"),
        f"{api}/users/{{name}}": {
            "get": {
                "tags": ["usage"],
                "summary": "One user's limits and today's usage",
                "security": auth,
                "parameters": user_param,
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/UserQuota"}),
                    **_errors(403),
                },
            }
        },
        f"{api}/users/{{name}}/reset-usage": {
            "post": {
                "tags": ["usage"],
                "summary": "Zero the user's counters of today (audited)",
                "security": auth,
                "parameters": user_param,
                "responses": {"200": _json(listing), **_errors(403)},
            }
        },
        f"{api}/groups": admin_get("Every known group: policy, members, usage today", "usage"),
        f"{api}/usage": admin_get("Totals per day, top users and groups", "usage", [days_param]),
        f"{api}/refusals": admin_get(
            "The newest refusals and quota cancellations", "usage", [limit_param]
        ),
        f"{api}/changes": admin_get(
            "The audit of policy and usage changes", "policies", [limit_param]
        ),
        f"{api}/resource-groups": admin_get(
            "Trino resource-group configuration generated from the policies", "policies"
        ),
    }


def openapi_document(prefix: str) -> dict[str, Any]:
    """The whole OpenAPI document for a service mounted at *prefix*."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "DataHub API",
            "version": __version__,
            "description": "Quota policies and usage of DataHub. Authenticate with a "
            "JupyterHub API token; the endpoints other than /me are for DataHub "
            "administrators (hub admins).",
        },
        "paths": paths(prefix),
        "components": components(),
        "tags": [
            {"name": "quota", "description": "Your own quota"},
            {"name": "policies", "description": "Quota policies (admins)"},
            {"name": "usage", "description": "Usage and refusals (admins)"},
        ],
    }
