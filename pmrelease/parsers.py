"""DRF's JSON parser with a bound on nesting depth (the project's default parser, settings.REST_FRAMEWORK).

Python's ``json`` module recurses once per nested array or object: a 2 KB body of ``[[[[…`` about a thousand
levels deep raises ``RecursionError`` in the parser or in whatever walks the result (serializers, the audit
snapshot), which DRF turns into a 500. The body is scanned first, without recursion, and refused with a 400
(``ParseError``) when it nests deeper than ``settings.JSON_MAX_DEPTH`` (64 by default: no document of this API
comes near it). A NUL character (``\u0000``) in any string or key is refused too: PostgreSQL cannot store it
(in a text column or in jsonb), so it would otherwise be a 500 wherever the value reaches the database.
"""
import io
import re

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# A JSON string (escapes included) or one bracket; everything else cannot change the depth.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_OPEN = frozenset(b"[{")


def max_depth():
    return getattr(settings, "JSON_MAX_DEPTH", 64)


def depth_exceeds(data, limit):
    """Whether the JSON text ``data`` (bytes) nests arrays/objects deeper than ``limit``. Never recurses."""
    if data.count(b"[") + data.count(b"{") <= limit:  # the common case: cannot be deeper than its brackets
        return False
    depth = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if len(token) == 1:
            if token[0] in _OPEN:
                depth += 1
                if depth > limit:
                    return True
            else:
                depth -= 1
    return False


def _refuse_nul(values):
    if _has_nul(values):
        raise ParseError("parse error - fields may not contain NUL (\\u0000) characters")


class JSONParser(parsers.JSONParser):
    """``application/json`` with nesting bounded by ``settings.JSON_MAX_DEPTH`` (400 beyond it)."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        if isinstance(data, str):
            data = data.encode()
        limit = max_depth()
        if depth_exceeds(data, limit):
            raise ParseError(f"JSON parse error - the document nests deeper than {limit} levels")
        try:
            result = super().parse(io.BytesIO(data), media_type, parser_context)
        except RecursionError:  # a last line of defence: never a 500
            raise ParseError(f"JSON parse error - the document nests deeper than {limit} levels") from None
        encoding = ((parser_context or {}).get("encoding") or settings.DEFAULT_CHARSET).lower().replace("_", "-")
        # In UTF-8 a NUL can only come as the escape \u0000; in another charset (utf-16, say) look at every string.
        maybe = b"\\u0000" in data or encoding not in ("utf-8", "utf8")
        if maybe and _has_nul(result):
            raise ParseError("JSON parse error - strings may not contain NUL (\\u0000) characters")
        return result


class FormParser(parsers.FormParser):
    """Form bodies, NUL characters refused (400) as in JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        _refuse_nul(dict(data.lists()))
        return data


class MultiPartParser(parsers.MultiPartParser):
    """Multipart bodies, NUL characters in the fields (not the files) refused (400) as in JSON."""

    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _refuse_nul(dict(result.data.lists()))
        return result


def _has_nul(value):
    """Whether a NUL character is in any string or key of a parsed document (iteratively: no recursion)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False

