"""Public texts of the status page (names, descriptions, update bodies, postmortems): what may be in them.

Everything public is published as HTML, JSON and an Atom feed (XML 1.0). XML cannot carry control
characters (other than tab, newline and carriage return), lone surrogates or U+FFFE/U+FFFF, and UTF-8 cannot
encode a lone surrogate: one such character in one text used to stop every later publish. New texts with
them are refused (``validate``, ``require``: a 400 naming the field); texts already stored are published
with each such character replaced by U+FFFD (``clean``).
"""
import re

from django.core.exceptions import ValidationError

from pmrelease import errors

# C0 controls but tab, LF, CR; DEL and the C1 controls; surrogates; the two non-characters XML refuses.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
MESSAGE = "must not contain control characters (only tab, line feed and carriage return), lone surrogates or U+FFFE/U+FFFF"


def validate(value):
    """A Django validator for a public text field."""
    if isinstance(value, str) and FORBIDDEN.search(value):
        found = FORBIDDEN.search(value).group()
        raise ValidationError(f"{MESSAGE} (found U+{ord(found):04X})", code="control_characters")


def require(**texts):
    """Refuse texts with forbidden characters: ValidationFailed naming every such field."""
    bad = {}
    for name, value in texts.items():
        try:
            validate(value)
        except ValidationError as exc:
            bad[name] = exc.messages
    if bad:
        raise errors.ValidationFailed(f"{', '.join(bad)}: {MESSAGE}", field_errors=bad)


def clean(value):
    """A stored text as it can be published: each forbidden character replaced by U+FFFD."""
    return FORBIDDEN.sub("\ufffd", value) if isinstance(value, str) else value
