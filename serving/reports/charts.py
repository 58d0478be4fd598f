"""PNG charts of the reports, drawn with matplotlib's Agg canvas (no pyplot, no display needed).

Titles and axis explanations live in the HTML beside each chart, because the browser always
draws Chinese correctly. The chart itself carries only tick labels, legend entries and
axis labels. Each of them goes through ``ChartLabels``: text that the chart fonts cannot
draw (Chinese without a Chinese font) is replaced by a key such as ``#3``, and the HTML lists
what each key stands for. Axis labels that cannot be drawn are left out.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from leadscore.i18n import Locale
from serving.reports.fonts import ChartFonts
from serving.reports.render import Chart

logger = logging.getLogger(__name__)

# percent: shares in [0, 1]; number: counts and amounts; days: one decimal; score: three decimals.
ValueFormat = Literal["percent", "number", "days", "score"]
DPI = 110
WIDTH_INCHES = 7.5
# Tick and legend labels wrap onto a second line after this many characters and are cut after two lines.
LABEL_LINE_CHARS = 22
# Bars get their value written on them up to this many bars per chart.
MAX_ANNOTATED_BARS = 24
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)


class ChartLabels:
    """Chart text that the fonts can draw, with numbered keys standing in for the rest."""

    def __init__(self, fonts: ChartFonts) -> None:
        self._fonts = fonts
        self._keys: dict[str, str] = {}

    def text(self, value: str) -> str:
        """Return ``value`` wrapped to two lines, or its key when the fonts cannot draw it."""
        if self._fonts.can_draw(value):
            return _wrap(value)
        if value not in self._keys:
            self._keys[value] = f"#{len(self._keys) + 1}"
        return self._keys[value]

    def optional(self, value: str | None) -> str | None:
        """Return ``value`` when the fonts can draw it, else None (for axis labels)."""
        if value is None or not self._fonts.can_draw(value):
            return None
        return value

    @property
    def keys(self) -> list[tuple[str, str]]:
        """(key, original text) pairs in the order the keys were given out."""
        return [(key, value) for value, key in self._keys.items()]


@dataclass(frozen=True)
class DrawnChart:
    """A PNG written by one of the draw functions and the label keys it used."""

    path: Path
    keys: list[tuple[str, str]]


def has_values(values: Sequence[float]) -> bool:
    """Return whether ``values`` contains at least one finite number to draw."""
    return bool(np.isfinite(np.asarray(values, dtype=np.float64)).any())


def _wrap(value: str) -> str:
    lines = textwrap.wrap(value, width=LABEL_LINE_CHARS) or [value]
    if len(lines) > 2:
        lines = [lines[0], lines[1][: LABEL_LINE_CHARS - 1] + "…"]
    return "\n".join(lines)


def _compact_number(value: float) -> str:
    """Format a number with k, M or B so that tick and bar labels stay short (tables keep every digit)."""
    size = abs(value)
    for threshold, divisor, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if size >= threshold:
            digits = f"{value / divisor:.1f}".removesuffix(".0")
            return f"{digits}{suffix}"
    return f"{value:,.0f}"


def _format_value(value: float, value_format: ValueFormat) -> str:
    if not np.isfinite(value):
        return ""
    if value_format == "percent":
        return f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"
    if value_format == "days":
        return f"{value:.1f}"
    if value_format == "score":
        return f"{value:.3f}"
    return _compact_number(value)


def _value_axis_formatter(value_format: ValueFormat) -> FuncFormatter | PercentFormatter:
    if value_format == "percent":
        return PercentFormatter(xmax=1.0, decimals=0)
    if value_format in ("days", "score"):
        return FuncFormatter(lambda value, _position: f"{value:g}")
    return FuncFormatter(lambda value, _position: _compact_number(value))


def _fonts_active(fonts: ChartFonts) -> AbstractContextManager[None]:
    # Text objects take the font settings active when they are created and when they are drawn,
    # so each draw function builds and saves its figure inside this context.
    return mpl.rc_context({"font.family": list(fonts.families)})


def _save(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    logger.debug("wrote chart %s", path)


def _legend_outside(axes: Axes) -> None:
    # Right of the plot area, so that the legend never hides a bar or a point.
    axes.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))


def _new_figure(height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(WIDTH_INCHES, height), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def draw_bar_chart(
    path: Path,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    fonts: ChartFonts,
    value_format: ValueFormat,
    horizontal: bool = False,
    value_label: str | None = None,
) -> DrawnChart:
    """Draw one group of bars per category, one bar per series, and write it to ``path``.

    A single series gets no legend. Missing values (NaN) leave a gap, and a series without any
    value is left out.
    """
    series = {name: values for name, values in series.items() if has_values(values)}
    labels = ChartLabels(fonts)
    count = max(len(categories), 1)
    height = max(2.6, 0.32 * count * max(1, len(series) // 2) + 1.2) if horizontal else 3.8
    with _fonts_active(fonts):
        figure, axes = _new_figure(height)
        positions = np.arange(len(categories), dtype=np.float64)
        width = 0.8 / max(len(series), 1)
        annotate = len(categories) * len(series) <= MAX_ANNOTATED_BARS
        for number, (name, values) in enumerate(series.items()):
            numbers = np.asarray(values, dtype=np.float64)
            offsets = positions - 0.4 + width * (number + 0.5)
            color = PALETTE[number % len(PALETTE)]
            # A single series has no legend, so its name needs no label and no key.
            legend_label = labels.text(name) if len(series) > 1 else None
            drawn_values = np.nan_to_num(numbers)
            if horizontal:
                bars = axes.barh(offsets, drawn_values, height=width, color=color, label=legend_label)
            else:
                bars = axes.bar(offsets, drawn_values, width=width, color=color, label=legend_label)
            if annotate:
                axes.bar_label(bars, labels=[_format_value(v, value_format) for v in numbers], fontsize=7)
        tick_labels = [labels.text(category) for category in categories]
        value_axis = axes.xaxis if horizontal else axes.yaxis
        value_axis.set_major_formatter(_value_axis_formatter(value_format))
        if horizontal:
            axes.set_yticks(positions, tick_labels)
            axes.invert_yaxis()
            axes.margins(x=0.1)  # room for the value written after the longest bar
            axes.set_xlabel(labels.optional(value_label) or "")
        else:
            axes.set_xticks(positions, tick_labels, rotation=30 if len(categories) > 5 else 0, ha="right")
            if len(categories) <= 5:
                for tick in axes.get_xticklabels():
                    tick.set_horizontalalignment("center")
            axes.set_ylabel(labels.optional(value_label) or "")
        if len(series) > 1:
            _legend_outside(axes)
        _save(figure, path)
    return DrawnChart(path, labels.keys)


def draw_line_chart(
    path: Path,
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    fonts: ChartFonts,
    value_format: ValueFormat,
    value_label: str | None = None,
) -> DrawnChart:
    """Draw one line with markers per series over ``x_labels`` (months) and write it to ``path``."""
    labels = ChartLabels(fonts)
    with _fonts_active(fonts):
        figure, axes = _new_figure(3.8)
        positions = np.arange(len(x_labels))
        for number, (name, values) in enumerate(series.items()):
            axes.plot(
                positions,
                np.asarray(values, dtype=np.float64),
                marker="o",
                markersize=3,
                linewidth=1.4,
                color=PALETTE[number % len(PALETTE)],
                label=labels.text(name),
            )
        step = max(1, len(x_labels) // 12)
        axes.set_xticks(positions[::step], [labels.text(label) for label in x_labels][::step], rotation=45)
        axes.yaxis.set_major_formatter(_value_axis_formatter(value_format))
        axes.set_ylabel(labels.optional(value_label) or "")
        axes.grid(axis="y", linewidth=0.4, alpha=0.6)
        if len(series) > 1:
            _legend_outside(axes)
        _save(figure, path)
    return DrawnChart(path, labels.keys)


def draw_scatter_chart(
    path: Path,
    groups: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    fonts: ChartFonts,
    x_format: ValueFormat,
    y_format: ValueFormat,
    x_label: str | None = None,
    y_label: str | None = None,
) -> DrawnChart:
    """Draw one point per item, coloured by group (``groups`` maps a name to x and y values)."""
    labels = ChartLabels(fonts)
    with _fonts_active(fonts):
        figure, axes = _new_figure(4.2)
        for number, (name, (x_values, y_values)) in enumerate(groups.items()):
            axes.scatter(
                np.asarray(x_values, dtype=np.float64),
                np.asarray(y_values, dtype=np.float64),
                s=18,
                alpha=0.8,
                color=PALETTE[number % len(PALETTE)],
                label=labels.text(name),
            )
        axes.xaxis.set_major_formatter(_value_axis_formatter(x_format))
        axes.yaxis.set_major_formatter(_value_axis_formatter(y_format))
        axes.set_xlabel(labels.optional(x_label) or "")
        axes.set_ylabel(labels.optional(y_label) or "")
        axes.grid(linewidth=0.4, alpha=0.6)
        if groups:
            _legend_outside(axes)
        _save(figure, path)
    return DrawnChart(path, labels.keys)


class ChartWriter:
    """Draws the charts of one report in one locale as ``<kind>.<locale>.<name>.png`` in ``out_dir``."""

    def __init__(self, out_dir: Path, kind: str, locale: Locale, fonts: ChartFonts) -> None:
        self.out_dir = out_dir
        self.prefix = f"{kind}.{locale}"
        self.fonts = fonts

    def path(self, name: str) -> Path:
        """Return the PNG path of chart ``name``."""
        return self.out_dir / f"{self.prefix}.{name}.png"

    def bar(
        self,
        name: str,
        caption: str,
        categories: Sequence[str],
        series: Mapping[str, Sequence[float]],
        *,
        value_format: ValueFormat,
        horizontal: bool = False,
        value_label: str | None = None,
    ) -> Chart:
        """Draw a bar chart (see ``draw_bar_chart``) and return it with its caption."""
        drawn = draw_bar_chart(
            self.path(name),
            categories,
            series,
            fonts=self.fonts,
            value_format=value_format,
            horizontal=horizontal,
            value_label=value_label,
        )
        return Chart(drawn.path.name, caption, drawn.keys)

    def line(
        self,
        name: str,
        caption: str,
        x_labels: Sequence[str],
        series: Mapping[str, Sequence[float]],
        *,
        value_format: ValueFormat,
        value_label: str | None = None,
    ) -> Chart:
        """Draw a line chart (see ``draw_line_chart``) and return it with its caption."""
        drawn = draw_line_chart(
            self.path(name),
            x_labels,
            series,
            fonts=self.fonts,
            value_format=value_format,
            value_label=value_label,
        )
        return Chart(drawn.path.name, caption, drawn.keys)

    def scatter(
        self,
        name: str,
        caption: str,
        groups: Mapping[str, tuple[Sequence[float], Sequence[float]]],
        *,
        x_format: ValueFormat,
        y_format: ValueFormat,
        x_label: str | None = None,
        y_label: str | None = None,
    ) -> Chart:
        """Draw a scatter chart (see ``draw_scatter_chart``) and return it with its caption."""
        drawn = draw_scatter_chart(
            self.path(name),
            groups,
            fonts=self.fonts,
            x_format=x_format,
            y_format=y_format,
            x_label=x_label,
            y_label=y_label,
        )
        return Chart(drawn.path.name, caption, drawn.keys)
