"""Alert rule conditions checked by a real PromQL parser (``promql-parser``), errors placed where they occur.

The parser says what is wrong but not where; ``locate`` finds the place by parsing growing prefixes of the
condition: the error lies at the first prefix whose failure is not merely "the text ended too early" (an
unclosed bracket or string, an operator still waiting for its right-hand side, a name still being typed).
No Django here: the admin, the API and the export all call it.
"""
import re

import promql_parser

INCOMPLETE = ("unclosed", "unexpected end of input", "unterminated")
WAITING = re.compile(r"(==|!=|>=|<=|=~|!~|[-+*/%^<>=,(\[{]|\b(and|or|unless|by|without|on|ignoring|group_left|"
                     r"group_right|bool|offset))\s*$")
MAX_LENGTH = 4000


def _error(text):
    try:
        promql_parser.parse(text)
    except ValueError as exc:
        return str(exc) or "invalid PromQL"
    return ""


def locate(condition):
    """(0-based column, message) of the first error in ``condition``, or None when it parses."""
    message = _error(condition)
    if not message:
        return None
    for end in range(1, len(condition) + 1):
        prefix = condition[:end]
        found = _error(prefix)
        if not found or found.startswith(INCOMPLETE):
            continue
        in_word = end < len(condition) and re.match(r"\w", condition[end - 1]) and re.match(r"\w", condition[end])
        if in_word or WAITING.search(prefix):
            continue
        start = end - 1
        while start > 0 and re.match(r"\w", condition[start - 1]) and re.match(r"\w", condition[start]):
            start -= 1
        return start, message
    return len(condition.rstrip()), message


def problems(condition):
    """What is wrong with a condition, as messages with the column and a caret under the place (empty: fine)."""
    if not isinstance(condition, str) or not condition.strip():
        return ["a PromQL expression is required, e.g. rate(http_requests_total{status=~\"5..\"}[5m]) > 0.05"]
    if len(condition) > MAX_LENGTH:
        return [f"at most {MAX_LENGTH} characters"]
    if "\n" in condition.strip():
        condition = " ".join(condition.split())
    where = locate(condition)
    if where is None:
        return []
    column, message = where
    return [f"{message} at column {column + 1}:\n{condition}\n{' ' * column}^"]


def normalise(condition):
    """The condition as stored: surrounding white space removed."""
    return condition.strip() if isinstance(condition, str) else condition
