"""Release-notes Markdown (releases/notes.py, pure)."""
import datetime as dt

from releases import notes


def test_notes_render__all_change_kinds__seed_layout():
    md = notes.render(version="2.1.0", product="PenguinMails", date=dt.date(2025, 10, 28), changes=[
        ("security", "Patched OpenSSL", "CVE-2025-1"),
        ("feature", "Advanced campaign scheduling", ""),
        ("fix", "Fixed Outlook rendering", "PM-12"),
        ("improvement", "Upgraded to React 18", ""),
        ("migration", "Database migration required", ""),
    ])
    lines = md.splitlines()
    assert lines[0] == "# Release 2.1.0 - PenguinMails (October 28, 2025)"
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == ["## 🚀 New Features", "## 🐛 Bug Fixes", "## 🔧 Technical Improvements",
                        "## 📋 Migration Notes", "## 🔒 Security Updates"]
    assert "- Fixed Outlook rendering (PM-12)" in lines
    assert lines[lines.index("## 🔒 Security Updates") + 1] == "- Patched OpenSSL (CVE-2025-1)"


def test_notes_render__empty_sections__left_out():
    md = notes.render(version="1.0.1", product="P", date=dt.date(2025, 1, 2), changes=[("fix", "x", "")])
    assert "New Features" not in md and "## 🐛 Bug Fixes" in md
