"""Charts drawn on the server as inline SVG: readable without JavaScript, allowed by the strict
CSP (presentation attributes only, no inline styles), described for screen readers."""

from django.utils.html import escape
from django.utils.safestring import mark_safe

WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 48, 20, 44
BAR_COLOUR, LINE_COLOUR, AXIS_COLOUR, TEXT_COLOUR = "#1f4e9c", "#1b7a3d", "#8a93a3", "#1d2330"


def _nice_max(value):
    """A round axis maximum at or above ``value`` (at least 1)."""
    # Even steps only, so the middle gridline is a whole number.
    for step in (2, 4, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000):
        if value <= step:
            return step
    return ((value // 2000) + 1) * 2000


class _Plot:
    """Where things go: the plot area, one slot per month, both axes' scales."""

    def __init__(self, rows):
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
        self.slot = self.w / max(len(rows), 1)
        self.top = _nice_max(max((row["received"] for row in rows), default=0))

    def y_volume(self, value):
        return TOP + self.h - self.h * value / self.top

    def y_rate(self, rate):
        return TOP + self.h - self.h * rate / 100


def _summary(rows):
    if not rows:
        return "No data."
    rates = [row["rate"] for row in rows if row["rate"] is not None]
    answered = (
        f"on-time rate between {min(rates)}% and {max(rates)}%." if rates else "none answered yet."
    )
    return (
        f"{len(rows)} months from {rows[0]['label']} to {rows[-1]['label']}: "
        f"{sum(row['received'] for row in rows)} requests received, {answered}"
    )


def _axes(plot):
    """Gridlines with the volume on the left and the rate on the right."""
    parts = []
    for fraction in (0, 0.5, 1):
        y = TOP + plot.h - plot.h * fraction
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot.w}" y2="{y:.1f}" '
            f'stroke="{AXIS_COLOUR}" stroke-width="{1 if fraction == 0 else 0.5}"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="13" '
            f'fill="{TEXT_COLOUR}">{round(plot.top * fraction)}</text>'
        )
        parts.append(
            f'<text x="{LEFT + plot.w + 6}" y="{y + 4:.1f}" font-size="13" '
            f'fill="{LINE_COLOUR}">{round(100 * fraction)}%</text>'
        )
    return parts


def _bars(plot, rows):
    parts = []
    bar_w = plot.slot * 0.6
    for index, row in enumerate(rows):
        x = LEFT + plot.slot * index + (plot.slot - bar_w) / 2
        y = plot.y_volume(row["received"])
        label = escape(row["label"])
        rate = "no answers" if row["rate"] is None else f"{row['rate']}% on time"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{TOP + plot.h - y:.1f}" '
            f'fill="{BAR_COLOUR}"><title>{label}: {int(row["received"])} received, '
            f"{escape(rate)}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="12" fill="{TEXT_COLOUR}">{label}</text>'
        )
    return parts


def _rate_line(plot, rows):
    """The rate line, broken where a month had no answered requests (no rate to draw)."""
    parts, run = [], []
    for index, row in enumerate(list(rows) + [{"rate": None}]):
        if row["rate"] is not None:
            run.append((LEFT + plot.slot * index + plot.slot / 2, plot.y_rate(row["rate"]), row))
            continue
        if len(run) > 1:
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in run)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{LINE_COLOUR}" '
                'stroke-width="2.5"/>'
            )
        for x, y, point in run:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{LINE_COLOUR}">'
                f"<title>{escape(point['label'])}: {int(point['on_time'])} of "
                f"{int(point['answered'])} on time ({int(point['rate'])}%)</title></circle>"
            )
        run = []
    return parts


def volume_and_on_time(rows, *, chart_id="volume-chart"):
    """Bars of requests received per month with a line of the on-time rate (%).

    ``rows`` are ``dashboard.monthly()`` rows: label, received, answered, on_time, rate.
    Returns safe SVG markup; every text from ``rows`` is escaped.
    """
    chart_id = escape(chart_id)
    plot = _Plot(rows)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">Requests received per month and on-time rate</title>',
        f'<desc id="{chart_id}-desc">Bars: requests received each month (left axis). '
        f"Line: percentage answered on time (right axis). {escape(_summary(rows))}</desc>",
        *_axes(plot),
        *_bars(plot, rows),
        *_rate_line(plot, rows),
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="13" fill="{BAR_COLOUR}">'
        "■ received</text>"
        f'<text x="{LEFT + 90}" y="{HEIGHT - 6}" font-size="13" fill="{LINE_COLOUR}">'
        "● on-time rate</text>",
        "</svg>",
    ]
    # Built only from escape()d text and numbers formatted here (see the tests).
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308 B703
