"""Release notes in the seed's Markdown layout (no Django import)."""

SECTIONS = (
    ("feature", "🚀 New Features"),
    ("fix", "🐛 Bug Fixes"),
    ("improvement", "🔧 Technical Improvements"),
    ("migration", "📋 Migration Notes"),
    ("security", "🔒 Security Updates"),
)


def render(*, version, product, date, changes, title=None):
    """Markdown for a release.

    ``changes`` is an iterable of (kind, summary, reference) with kind one of feature, fix, improvement,
    migration, security; sections without changes are left out; ``date`` is a ``datetime.date``.
    """
    heading = f"# Release {version} - {product} ({date:%B} {date.day}, {date:%Y})"
    lines = [heading]
    if title:
        lines += ["", f"_{title}_"]
    by_kind = {kind: [] for kind, _ in SECTIONS}
    for kind, summary, reference in changes:
        if kind not in by_kind:
            raise ValueError(f"unknown change kind '{kind}'")
        text = " ".join(str(summary).split())
        by_kind[kind].append(f"- {text} ({reference})" if reference else f"- {text}")
    for kind, label in SECTIONS:
        if by_kind[kind]:
            lines += ["", f"## {label}", *by_kind[kind]]
    if not any(by_kind.values()):
        lines += ["", "_No changes recorded._"]
    return "\n".join(lines) + "\n"
