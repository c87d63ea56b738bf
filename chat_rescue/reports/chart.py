"""Draws a `Report` as one PNG: matplotlib's `Figure` on the Agg canvas, never pyplot.

pyplot keeps global state (a current figure, a figure registry) that threads of a server
would share; a `Figure` with its own `FigureCanvasAgg` is a plain value, safe to draw in any
thread and freed when dropped. The figure is tall and narrow with large type, to be read on
a phone, and kept under MAX_BYTES.
"""

from __future__ import annotations

import io
from datetime import date

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chat_rescue.bot.report import Report

MAX_BYTES = 200_000
MAX_OPERATORS = 12  # rows of the operators' table; the rest are summed up below it
WIDTH, HEIGHT, DPI = 7.2, 15.0, 100  # inches: 720 × 1500 px
P50, P90, TARGET = "#2b6cb0", "#c05621", "#2f855a"
RESCUE_COLOURS = ("#3182ce", "#dd6b20", "#805ad5")
RESCUE_NAMES = ("nudge answered", "return reclaimed", "escalation answered")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def render(report: Report) -> bytes:
    """The report as PNG bytes: first response per day (p50, p90, target), share within
    target, rescues per day, conversations by hour of the week, and the operators."""
    figure = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    figure.set_facecolor("white")
    figure.suptitle(f"{report.team}: last {len(report.days)} days "
                    f"({report.time_label}, {report.zone} days)", fontsize=13,
                    fontweight="bold")
    first, share, rescues, week, table = figure.subplots(
        5, 1, height_ratios=(3, 2, 2, 3, 3.2))
    labels = [_day_label(row.day) for row in report.days]
    _first_response(first, report, labels)
    _within_target(share, report, labels)
    _rescues(rescues, report, labels)
    _hour_of_week(figure, week, report)
    _operators(table, report)
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=DPI, facecolor="white",
                   pil_kwargs={"optimize": True})
    return out.getvalue()


def _day_label(day: date) -> str:
    return f"{day.day} {day:%b}"


def _ticks(axes: Axes, labels: list[str]) -> None:
    """Every day's tick, with a label only as often as fits across a phone's screen."""
    step = max(1, len(labels) // 8 + (len(labels) % 8 > 0))
    axes.set_xticks(range(len(labels)))
    axes.set_xticklabels([label if i % step == 0 else "" for i, label in enumerate(labels)],
                         fontsize=9)
    axes.set_xlim(-0.6, max(len(labels), 1) - 0.4)


def _minutes(seconds: float | None) -> float:
    return float("nan") if seconds is None else seconds / 60


def _first_response(axes: Axes, report: Report, labels: list[str]) -> None:
    xs = list(range(len(report.days)))
    axes.plot(xs, [_minutes(r.p50) for r in report.days], marker="o", markersize=4,
              color=P50, linewidth=2, label="p50")
    axes.plot(xs, [_minutes(r.p90) for r in report.days], marker="o", markersize=4,
              color=P90, linewidth=2, label="p90")
    if report.target is not None:
        axes.axhline(report.target / 60, color=TARGET, linestyle="--", linewidth=1.5,
                     label=f"target {_short(report.target)}")
    axes.set_title(f"First response per day, minutes ({report.time_label})", fontsize=11,
                   loc="left")
    highest = max((_minutes(r.p90) for r in report.days if r.p90 is not None), default=0.0)
    if report.target is not None:
        highest = max(highest, report.target / 60)
    axes.set_ylim(0, max(highest * 1.3, 1.0))  # room above the lines for the legend
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=9, loc="upper left", frameon=False, ncols=3)
    _ticks(axes, labels)
    if not any(r.first_responses for r in report.days):
        _empty(axes, "no first responses in this period")


def _within_target(axes: Axes, report: Report, labels: list[str]) -> None:
    xs = list(range(len(report.days)))
    shares = [0.0 if r.within_target is None else r.within_target * 100 for r in report.days]
    axes.bar(xs, shares, color=TARGET, width=0.7)
    axes.set_ylim(0, 100)
    axes.set_title("Answered within target, % per day", fontsize=11, loc="left")
    axes.grid(axis="y", alpha=0.3)
    _ticks(axes, labels)
    if report.target is None:
        _empty(axes, "first_response is off: no target")
    elif not any(r.first_responses for r in report.days):
        _empty(axes, "no first responses in this period")


def _rescues(axes: Axes, report: Report, labels: list[str]) -> None:
    xs = list(range(len(report.days)))
    bottom = [0] * len(xs)
    for i, (name, colour) in enumerate(zip(RESCUE_NAMES, RESCUE_COLOURS, strict=True)):
        counts = [r.rescues[i] for r in report.days]
        axes.bar(xs, counts, bottom=bottom, color=colour, width=0.7, label=name)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_title("Rescues per day", fontsize=11, loc="left")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", frameon=False, ncols=3)
    axes.set_ylim(0, max(max(bottom, default=0) * 1.3, 1))
    _ticks(axes, labels)
    if not any(bottom):
        _empty(axes, "no rescues in this period")


def _hour_of_week(figure: Figure, axes: Axes, report: Report) -> None:
    counts = report.hour_of_week
    image = axes.imshow(counts, aspect="auto", cmap="YlOrRd", interpolation="nearest",
                        vmin=0, vmax=max(1, max(max(row) for row in counts)))
    axes.set_yticks(range(7))
    axes.set_yticklabels(WEEKDAYS, fontsize=9)
    axes.set_xticks(range(0, 24, 3))
    axes.set_xticklabels([f"{h:02d}" for h in range(0, 24, 3)], fontsize=9)
    axes.set_title(f"Conversations by hour of the week ({report.zone})", fontsize=11,
                   loc="left")
    figure.colorbar(image, ax=axes, pad=0.01, fraction=0.04)


def _operators(axes: Axes, report: Report) -> None:
    axes.set_axis_off()
    axes.set_title("Per operator", fontsize=11, loc="left")
    rows = report.operators[:MAX_OPERATORS]
    if not rows:
        _empty(axes, "no operator took a conversation in this period")
        return
    cells = [[row.operator[:18], str(row.conversations), _short(row.first_response_p50),
              str(row.nudges), str(row.handed_off)] for row in rows]
    more = report.operators[MAX_OPERATORS:]
    if more:
        cells.append([f"{len(more)} more", str(sum(r.conversations for r in more)), "",
                      str(sum(r.nudges for r in more)), str(sum(r.handed_off for r in more))])
    table = axes.table(cellText=cells, loc="upper center", cellLoc="center",
                       colLabels=["operator", "conversations", "first resp. p50", "nudged",
                                  "handed off"])
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    table.scale(1, 1.35)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#cbd5e0")
        if row == 0:
            cell.set_facecolor("#edf2f7")
            cell.set_text_props(fontweight="bold")


def _short(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, transform=axes.transAxes, ha="center", va="center",
              fontsize=10, color="#718096")
