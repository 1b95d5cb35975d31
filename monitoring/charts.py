"""Server-rendered SVG charts (pure: no Django, no script, no CDN): a bar per period, coloured by DORA tier."""
from html import escape

TIER_COLOURS = {"elite": "#1a7f37", "high": "#2f81f7", "medium": "#d29922", "low": "#cf222e", None: "#8c959f"}


def bar_chart(*, title, labels, values, tiers, formatter=str, width=420, height=170):
    """An SVG bar chart: one bar per label (``values`` may hold None: "no data", drawn as a grey tick),
    each bar in its tier's colour with the formatted value above it and the label below."""
    left, right, top, bottom = 8, 8, 28, 34
    inner_w, inner_h = width - left - right, height - top - bottom
    numbers = [v for v in values if v is not None]
    peak = max(numbers) if numbers and max(numbers) > 0 else 1.0
    slot = inner_w / max(len(labels), 1)
    bar_w = max(slot * 0.6, 2)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="dora-chart" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
             f'<title>{escape(title)}</title>',
             f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="currentColor">{escape(title)}</text>',
             f'<line x1="{left}" y1="{top + inner_h}" x2="{left + inner_w}" y2="{top + inner_h}" stroke="#8c959f"/>']
    for index, (label, value, tier) in enumerate(zip(labels, values, tiers, strict=True)):
        x = left + index * slot + (slot - bar_w) / 2
        centre = x + bar_w / 2
        if value is None:
            parts.append(f'<rect x="{x:.1f}" y="{top + inner_h - 2}" width="{bar_w:.1f}" height="2" '
                         f'fill="{TIER_COLOURS[None]}"><title>{escape(label)}: no data</title></rect>')
            text = "—"
            y = top + inner_h - 6
        else:
            h = max(inner_h * value / peak, 1 if value > 0 else 0)
            y = top + inner_h - h
            text = formatter(value)
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                         f'fill="{TIER_COLOURS.get(tier, TIER_COLOURS[None])}" data-tier="{escape(str(tier))}">'
                         f'<title>{escape(label)}: {escape(text)} ({escape(str(tier or "no tier"))})</title></rect>')
            y -= 4
        parts.append(f'<text x="{centre:.1f}" y="{y:.1f}" font-size="10" text-anchor="middle" '
                     f'fill="currentColor">{escape(text)}</text>')
        parts.append(f'<text x="{centre:.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle" '
                     f'fill="currentColor">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def duration(seconds):
    """A short human duration: 45 s, 12 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def percent(fraction):
    return "—" if fraction is None else f"{fraction * 100:.0f} %"
