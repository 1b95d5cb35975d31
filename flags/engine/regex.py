"""Compile Unleash ``REGEX`` constraint values with the semantics of Rust's ``regex`` crate.

Unleash's reference engine (Yggdrasil) uses Rust's ``regex`` crate, and the client specification follows it:
inline flags may appear anywhere (``^(?i)abc$``), POSIX classes are supported inside brackets
(``[[:alpha:]]``), ``$`` only matches at the very end of the text unless ``(?m)`` is active, and look-around,
back-references, atomic groups and possessive quantifiers are *rejected* (a constraint using them never
matches). Python's :mod:`re` differs on each of those points, so the pattern is translated to an equivalent
Python pattern first, and constructs that Rust rejects raise :class:`RegexTranslationError`.

Known residual differences: Rust's engine runs in linear time whereas Python's backtracks (a pathological
pattern such as ``(a+)+$`` can be slow on long inputs); ``\\p{..}`` Unicode classes and Rust's class set
operations (``&&``, ``--``, ``~~``, nested classes) are rejected rather than emulated.
"""

from __future__ import annotations

import re
import warnings

__all__ = ["RegexTranslationError", "compile_rust_regex", "translate_rust_regex"]


class RegexTranslationError(ValueError):
    """The pattern uses a construct that Rust's regex crate rejects, or that cannot be emulated."""


_MAX_CODEPOINT = 0x10FFFF

_POSIX_CLASSES: dict[str, tuple[tuple[int, int], ...]] = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)),
    "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x00, 0x7F),),
    "blank": ((0x09, 0x09), (0x20, 0x20)),
    "cntrl": ((0x00, 0x1F), (0x7F, 0x7F)),
    "digit": ((0x30, 0x39),),
    "graph": ((0x21, 0x7E),),
    "lower": ((0x61, 0x7A),),
    "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)),
    "space": ((0x09, 0x0D), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),),
    "word": ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)),
    "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}

_POSIX_RE = re.compile(r"\[:(\^?)([a-z]+):\]")
_COUNTED_RE = re.compile(r"\{\d+(?:,\d*)?\}")
_REJECTED_GROUPS = (
    ("(?=", "look-ahead is not supported"),
    ("(?!", "negative look-ahead is not supported"),
    ("(?<=", "look-behind is not supported"),
    ("(?<!", "negative look-behind is not supported"),
    ("(?>", "atomic groups are not supported"),
    ("(?#", "inline comments are not supported"),
    ("(?P=", "back-references are not supported"),
    ("(?P>", "recursion is not supported"),
    ("(?(", "conditionals are not supported"),
    ("(?|", "branch reset groups are not supported"),
    ("(?R", "recursion is not supported"),
)
_FLAG_CHARS = frozenset("imsxuUR")


def _codepoint(cp: int) -> str:
    return f"\\U{cp:08x}"


def _ranges_to_class_body(ranges: tuple[tuple[int, int], ...] | list[tuple[int, int]]) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(_codepoint(lo) if lo == hi else f"{_codepoint(lo)}-{_codepoint(hi)}")
    return "".join(parts)


def _posix_class(negated: bool, name: str) -> str:
    ranges = _POSIX_CLASSES.get(name)
    if ranges is None:
        raise RegexTranslationError(f"unknown POSIX class [:{name}:]")
    if not negated:
        return _ranges_to_class_body(ranges)
    complement = []
    start = 0
    for lo, hi in ranges:
        if lo > start:
            complement.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX_CODEPOINT:
        complement.append((start, _MAX_CODEPOINT))
    return _ranges_to_class_body(complement)


# \p{..} classes that Python's ``re`` can express exactly (as a class or as a one-character expression).
_UNICODE_CLASSES = {
    "L": (r"[^\W\d_]", r"[\W\d_]"),
    "Letter": (r"[^\W\d_]", r"[\W\d_]"),
    "Nd": (r"\d", r"\D"),
    "Decimal_Number": (r"\d", r"\D"),
}


def _unicode_class(pattern: str, i: int) -> tuple[str, int]:
    r"""Translate ``\pX`` / ``\p{Name}`` / ``\P..`` at ``pattern[i] == '\'``; returns a one-char expression."""
    negated = pattern[i + 1] == "P"
    if i + 2 >= len(pattern):
        raise RegexTranslationError("incomplete \\p escape")
    if pattern[i + 2] == "{":
        end = pattern.find("}", i + 3)
        if end == -1:
            raise RegexTranslationError("unterminated \\p{..} escape")
        name, nxt = pattern[i + 3 : end].strip(), end + 1
    else:
        name, nxt = pattern[i + 2], i + 3
    if name.startswith("^"):
        negated, name = not negated, name[1:]
    expressions = _UNICODE_CLASSES.get(name)
    if expressions is None:
        raise RegexTranslationError(f"Unicode class \\p{{{name}}} is not supported")
    return expressions[1 if negated else 0], nxt


def _escape(pattern: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape sequence starting at ``pattern[i] == '\\'``; return (text, next index)."""
    n = len(pattern)
    if i + 1 >= n:
        raise RegexTranslationError("pattern ends with a lone backslash")
    nxt = pattern[i + 1]
    if nxt.isdigit():
        raise RegexTranslationError("back-references and octal escapes are not supported")
    if nxt in "pP":
        return _unicode_class(pattern, i)
    if nxt == "k":
        raise RegexTranslationError("named back-references are not supported")
    if nxt == "x" and i + 2 < n and pattern[i + 2] == "{":
        end = pattern.find("}", i + 3)
        if end == -1:
            raise RegexTranslationError("unterminated \\x{..} escape")
        try:
            cp = int(pattern[i + 3 : end], 16)
        except ValueError:
            raise RegexTranslationError("invalid \\x{..} escape") from None
        if cp > _MAX_CODEPOINT:
            raise RegexTranslationError("invalid \\x{..} escape")
        return _codepoint(cp), end + 1
    if not in_class:
        if nxt == "z":
            return r"\Z", i + 2
        if nxt == "<":
            return r"\b(?=\w)", i + 2
        if nxt == ">":
            return r"\b(?<=\w)", i + 2
        if nxt in "bB" and i + 2 < n and pattern[i + 2] == "{":
            raise RegexTranslationError("\\b{..} word boundary assertions are not supported")
    return pattern[i : i + 2], i + 2


_ANY_CHAR = r"(?s:.)"


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """Translate the bracket expression at ``pattern[i] == '['`` into an expression matching one character.

    Simple classes are copied (``[a-z]``); Rust's nested classes and set operations (``&&`` intersection,
    ``--`` difference, ``~~`` symmetric difference, equal precedence, left to right) become look-aheads.
    """
    n = len(pattern)
    i += 1
    negated = False
    if i < n and pattern[i] == "^":
        negated = True
        i += 1
    operands: list[str] = []
    operators: list[str] = []
    body: list[str] = []
    nested: list[str] = []
    first = True
    while True:
        if i >= n:
            raise RegexTranslationError("unterminated character class")
        ch = pattern[i]
        if ch == "]" and not first:
            i += 1
            break
        first = False
        if ch == "]":
            body.append(r"\]")
            i += 1
            continue
        if pattern.startswith(("&&", "--", "~~"), i):
            operands.append(_class_union(body, nested))
            operators.append(pattern[i : i + 2])
            body, nested = [], []
            i += 2
            continue
        if ch == "\\":
            if i + 1 < n and pattern[i + 1] in "pP":
                text, i = _unicode_class(pattern, i)
                nested.append(text)
                continue
            text, i = _escape(pattern, i, in_class=True)
            body.append(text)
            continue
        if ch == "[":
            m = _POSIX_RE.match(pattern, i)
            if m is not None:
                body.append(_posix_class(bool(m.group(1)), m.group(2)))
                i = m.end()
                continue
            text, i = _char_class(pattern, i)
            nested.append(text)
            continue
        body.append(ch)
        i += 1
    operands.append(_class_union(body, nested))
    expr = operands[0]
    for op, operand in zip(operators, operands[1:], strict=True):
        if op == "&&":
            expr = f"(?:(?={expr}){operand})"
        elif op == "--":
            expr = f"(?:(?!{operand}){expr})"
        else:
            expr = f"(?:(?={expr})(?!{operand}){_ANY_CHAR}|(?={operand})(?!{expr}){_ANY_CHAR})"
    if not negated:
        return expr, i
    if not operators and expr.startswith("[") and not expr.startswith("[^"):
        return "[^" + expr[1:], i
    return f"(?:(?!{expr}){_ANY_CHAR})", i


def _class_union(body: list[str], nested: list[str]) -> str:
    parts = []
    if body:
        parts.append("[" + "".join(body) + "]")
    parts.extend(nested)
    if not parts:
        return "(?!)"
    if len(parts) == 1:
        return parts[0]
    return "(?:" + "|".join(parts) + ")"


def _translate_flags(flags: str) -> tuple[str, set[str], set[str]]:
    """Translate Rust inline flags (``i-s``) into a Python scoped-flag string plus the on/off flag sets.

    ``U`` (swap greed) is dropped: greediness never changes *whether* a pattern matches, only where.
    """
    on: set[str] = set()
    off: set[str] = set()
    negate = False
    for ch in flags:
        if ch == "-":
            if negate:
                raise RegexTranslationError("repeated '-' in inline flags")
            negate = True
            continue
        if ch not in _FLAG_CHARS:
            raise RegexTranslationError(f"unknown inline flag {ch!r}")
        if ch == "R":
            raise RegexTranslationError("inline flag 'R' (CRLF mode) is not supported")
        (off if negate else on).add(ch)
    py_on = sorted(on - {"u", "U"})
    py_off = sorted(off - {"u", "U"})
    if "u" in off:
        py_on.append("a")
    text = "".join(py_on) + ("-" + "".join(py_off) if py_off else "")
    return text, on, off


def translate_rust_regex(pattern: str) -> str:
    """Return a Python :mod:`re` pattern matching exactly the texts that Rust's ``regex`` would match.

    Only *whether* a text matches is preserved (which is all a constraint needs), not match positions.
    """
    out: list[str] = []
    # A frame per open group: [scoped flag groups opened in it, multiline, verbose, index of its "(" in out].
    stack: list[list] = [[[], False, False, 0]]
    atom_start: int | None = None  # index in ``out`` where the last quantifiable atom starts
    quantified = False  # the last atom already carries a quantifier
    lazy = False  # ... and that quantifier already has its lazy ``?``
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        frame = stack[-1]
        if frame[2]:
            if ch == "#":
                end = pattern.find("\n", i)
                end = n if end == -1 else end + 1
                out.append(pattern[i:end] + ("" if pattern[end - 1 : end] == "\n" else "\n"))
                i = end
                continue
            if ch in " \t\n\r\f\v":
                out.append(ch)
                i += 1
                continue
        if ch == "\\":
            atom_start, quantified = len(out), False
            text, i = _escape(pattern, i, in_class=False)
            out.append(text)
            continue
        if ch == "[":
            atom_start, quantified = len(out), False
            text, i = _char_class(pattern, i)
            out.append(text)
            continue
        if ch == "(":
            atom_start, quantified = None, False
            if not pattern.startswith("(?", i):
                stack.append([[], frame[1], frame[2], len(out)])
                out.append("(")
                i += 1
                continue
            for prefix, message in _REJECTED_GROUPS:
                if pattern.startswith(prefix, i):
                    raise RegexTranslationError(message)
            if pattern.startswith(("(?P<", "(?<"), i):
                start = i + (4 if pattern.startswith("(?P<", i) else 3)
                end = pattern.find(">", start)
                if end == -1:
                    raise RegexTranslationError("unterminated group name")
                stack.append([[], frame[1], frame[2], len(out)])
                out.append(f"(?P<{pattern[start:end]}>")
                i = end + 1
                continue
            j = i + 2
            while j < n and pattern[j] not in ":)":
                j += 1
            if j >= n:
                raise RegexTranslationError("unterminated group")
            py_flags, on, off = _translate_flags(pattern[i + 2 : j])
            multiline = (frame[1] or "m" in on) and "m" not in off
            verbose = (frame[2] or "x" in on) and "x" not in off
            if pattern[j] == ":":
                stack.append([[], multiline, verbose, len(out)])
                out.append(f"(?{py_flags}:" if py_flags else "(?:")
            else:
                if py_flags:
                    out.append(f"(?{py_flags}:")
                    frame[0].append(py_flags)
                frame[1] = multiline
                frame[2] = verbose
            i = j + 1
            continue
        if ch == ")":
            if len(stack) == 1:
                raise RegexTranslationError("unbalanced parenthesis")
            out.append(")" * len(frame[0]) + ")")
            stack.pop()
            atom_start, quantified = frame[3], False
            i += 1
            continue
        if ch == "|":
            out.append(")" * len(frame[0]) + "|" + "".join(f"(?{f}:" for f in frame[0]))
            atom_start, quantified = None, False
            i += 1
            continue
        if ch in "*+?" or (ch == "{" and _COUNTED_RE.match(pattern, i)):
            if ch == "{":
                m = _COUNTED_RE.match(pattern, i)
                assert m is not None
                quantifier, i = m.group(0), m.end()
            else:
                quantifier, i = ch, i + 1
            if atom_start is None:
                raise RegexTranslationError("repetition operator without an expression")
            if quantified:
                if quantifier == "?" and not lazy:
                    out[-1] += "?"  # lazy modifier: irrelevant to whether the pattern matches
                    lazy = True
                    continue
                # Rust reads ``a*+`` as ``(a*)+`` (nested repetition), not as a possessive quantifier.
                out.insert(atom_start, "(?:")
                out[-1] += ")"
            out[-1] += quantifier
            quantified, lazy = True, False
            continue
        if ch == "$":
            atom_start, quantified = len(out), False
            out.append("$" if frame[1] else r"\Z")
            i += 1
            continue
        if ch == "{":
            atom_start, quantified = len(out), False
            out.append(r"\{")
            i += 1
            continue
        atom_start, quantified = len(out), False
        out.append(ch)
        i += 1
    if len(stack) != 1:
        raise RegexTranslationError("missing closing parenthesis")
    out.append(")" * len(stack[0][0]))
    return "".join(out)


def compile_rust_regex(pattern: str, case_insensitive: bool = False) -> re.Pattern[str]:
    """Translate and compile; raises :class:`RegexTranslationError` (a ``ValueError``) when invalid."""
    translated = translate_rust_regex(pattern)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return re.compile(translated, re.IGNORECASE if case_insensitive else 0)
    except re.error as exc:
        raise RegexTranslationError(str(exc)) from None
