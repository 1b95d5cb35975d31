"""Server-rendered SVG charts of a trigger's evaluations over a deployment and its bake time (pure: no Django,
no JavaScript, no CDN). Points are coloured by decision; the threshold is a dashed line; firings are marked."""
import datetime as dt
from html import escape

COLOURS = {"ok": "#1a7f37", "breaching": "#bf8700", "fired": "#cf222e", "no_data": "#8c959f", "error": "#8250df",
           "cooling_down": "#0969da"}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 640, 170, 48, 12, 22, 30


def _fmt(value):
    return f"{value:.3g}"


def trigger_chart(*, title, threshold, operator, points, start, end, finished=None, bake_end=None, fired=()):
    """An SVG string. ``points``: [(datetime, value or None, decision)]; ``start``/``end`` the time axis;
    ``finished`` when the deployment succeeded (the bake time is shaded until ``bake_end``)."""
    start_ts, end_ts = start.timestamp(), max(end.timestamp(), start.timestamp() + 1)
    values = [v for _, v, _ in points if v is not None]
    top = max([threshold, *values]) * 1.15 or 1.0
    bottom = min(0.0, *values, threshold)

    def x(moment):
        ts = moment.timestamp() if isinstance(moment, dt.datetime) else moment
        return LEFT + (WIDTH - LEFT - RIGHT) * (min(max(ts, start_ts), end_ts) - start_ts) / (end_ts - start_ts)

    def y(value):
        return TOP + (HEIGHT - TOP - BOTTOM) * (1 - (value - bottom) / ((top - bottom) or 1))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="trigger-chart" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
             'fill="#f6f8fa" stroke="#d0d7de"/>']
    if finished is not None and bake_end is not None and bake_end > finished:
        parts.append(f'<rect x="{x(finished):.1f}" y="{TOP}" width="{max(x(bake_end) - x(finished), 0):.1f}" '
                     f'height="{HEIGHT - TOP - BOTTOM}" fill="#ddf4ff" opacity="0.7"><title>bake time</title></rect>')
    ty = y(threshold)
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#cf222e" '
                 f'stroke-dasharray="5 4"><title>threshold {escape(operator)} {_fmt(threshold)}</title></line>')
    line = [f"{x(at):.1f},{y(v):.1f}" for at, v, _ in points if v is not None]
    if len(line) > 1:
        parts.append(f'<polyline points="{" ".join(line)}" fill="none" stroke="#57606a" stroke-width="1.5"/>')
    for at, value, decision in points:
        cy = y(value) if value is not None else HEIGHT - BOTTOM - 4
        label = f"{at:%H:%M:%S} {decision}" + (f" {_fmt(value)}" if value is not None else "")
        parts.append(f'<circle cx="{x(at):.1f}" cy="{cy:.1f}" r="3.5" fill="{COLOURS.get(decision, "#000")}" '
                     f'class="point {escape(decision)}"><title>{escape(label)}</title></circle>')
    for at in fired:
        fx = x(at)
        parts.append(f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#cf222e" '
                     f'stroke-width="2" class="fired"><title>fired at {at:%H:%M:%S}</title></line>')
        parts.append(f'<text x="{fx + 3:.1f}" y="{TOP + 12}" font-size="11" fill="#cf222e">fired</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="10" text-anchor="end">{_fmt(top)}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{ty + 4:.1f}" font-size="10" text-anchor="end" fill="#cf222e">'
                 f'{_fmt(threshold)}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="{HEIGHT - BOTTOM + 4}" font-size="10" text-anchor="end">{_fmt(bottom)}</text>')
    for moment, anchor in ((start, "start"), (end, "end")):
        parts.append(f'<text x="{x(moment):.1f}" y="{HEIGHT - 10}" font-size="10" text-anchor="{anchor}">'
                     f'{moment:%Y-%m-%d %H:%M:%S}</text>')
    if finished is not None:
        parts.append(f'<text x="{x(finished) + 3:.1f}" y="{TOP + 26}" font-size="10" fill="#0969da">'
                     f'succeeded {finished:%H:%M:%S}' + (" · bake time" if bake_end and bake_end > finished else "")
                     + "</text>")
    parts.append(f'<text x="{LEFT}" y="{TOP - 8}" font-size="12" font-weight="600">{escape(title)}</text>')
    parts.append("</svg>")
    return "".join(parts)
