"""The OpenAPI document as the portal serves it, and real answers checked against the schemas it documents."""
import datetime as dt
import json
from urllib.parse import urlparse

from drf_spectacular.validation import validate_schema
from jsonschema import Draft7Validator, FormatChecker


def served_schema(client, user=None):
    """The document at /api/schema/ (JSON, as ``user`` when given, logged out after), checked to be a valid
    OpenAPI 3 document."""
    if user is not None:
        client.force_login(user)
    response = client.get("/api/schema/", {"format": "json"})
    if user is not None:
        client.logout()
    assert response.status_code == 200, response.content[:300]
    document = response.json()
    validate_schema(document)
    return document


def _json_schema(node):
    """An OpenAPI 3.0 schema object as JSON Schema: ``nullable: true`` becomes a null alternative."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if node.pop("nullable", False):
        if "type" in node:
            node["type"] = [node["type"], "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        if "type" not in node:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


FORMATS = FormatChecker([])


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value):
    return not isinstance(value, str) or (
        "T" in value and dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None)


@FORMATS.checks("date", raises=ValueError)
def _date(value):
    return not isinstance(value, str) or bool(dt.date.fromisoformat(value))


@FORMATS.checks("uri")
def _uri(value):
    return not isinstance(value, str) or bool(urlparse(value).scheme and urlparse(value).netloc)


def schema_validator(document, schema):
    """A JSON Schema validator for ``schema`` (e.g. ``{"$ref": "#/components/schemas/X"}``) in ``document``."""
    root = {"components": _json_schema(document["components"]), "allOf": [_json_schema(schema)]}
    Draft7Validator.check_schema(root)
    return Draft7Validator(root, format_checker=FORMATS)


def documented_response(document, path, method, status):
    """The response object the document gives for ``status`` of ``method path`` (AssertionError if none)."""
    operation = document["paths"][path][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path}: {status} is not documented"
    return operation["responses"][str(status)]


def assert_documented(document, path, method, response):
    """``response`` (a Django test response) is one ``method path`` documents: its status, content type and body
    (validated against the documented schema); gives the parsed body (None when there is none)."""
    documented = documented_response(document, path, method, response.status_code)
    content = documented.get("content")
    if not content:
        assert not response.content, f"{method} {path} {response.status_code}: a body, documented without one"
        return None
    media_type = response["Content-Type"].split(";")[0].strip()
    assert media_type in content, f"{method} {path} {response.status_code}: {media_type} is not documented"
    if media_type != "application/json":
        return response.content
    body = json.loads(response.content)
    errors = sorted(schema_validator(document, content[media_type]["schema"]).iter_errors(body),
                    key=lambda e: list(e.absolute_path))
    assert not errors, f"{method} {path} {response.status_code}: the body does not match its schema:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in errors[:10])
    for name in documented.get("headers", {}):
        if name in ("ETag", "Retry-After"):
            assert response.has_header(name), f"{method} {path} {response.status_code}: no {name} header"
    return body


def assert_invalid(document, schema_name, body):
    """``body`` does NOT match component ``schema_name`` (the schema is strict enough to catch it)."""
    validator = schema_validator(document, {"$ref": f"#/components/schemas/{schema_name}"})
    assert list(validator.iter_errors(body)), f"{schema_name} accepts {body!r}"
