"""Report documents and their HTML: one Jinja2 template with inline CSS for every report.

A report module builds a ``ReportDocument`` (texts already in the reader's locale, numbers
already formatted, charts already written as PNG files) and ``write_html`` renders it. The
template autoescapes every value, so lead data such as channel names cannot inject markup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import jinja2
import pandas as pd

from leadscore.i18n import Locale
from leadscore.spreadsheet import defuse_formulas
from serving.reports.messages import LANGUAGE_NAMES, text

logger = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Table:
    """A table of formatted cells; ``numeric`` marks the columns that are right-aligned."""

    header: tuple[str, ...]
    rows: Sequence[Sequence[str]]
    numeric: tuple[bool, ...]
    caption: str = ""
    note: str = ""


@dataclass(frozen=True)
class Chart:
    """A PNG chart next to the HTML file, its caption and the label keys it uses."""

    file: str
    caption: str
    keys: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Section:
    """A titled part of a report: paragraphs, then charts, then tables, then a bullet list."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    items: list[str] = field(default_factory=list)


@dataclass
class ReportDocument:
    """Everything one HTML report shows, in one locale.

    ``sources`` lists (label, value) facts that make each number traceable: the data folder,
    row counts, the time window, the options and when the report was generated.
    ``alternates`` lists (language name, file name) links to the same report in other locales.
    """

    kind: str
    locale: Locale
    title: str
    summary: list[str]
    sources: list[tuple[str, str]]
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)
    alternates: list[tuple[str, str]] = field(default_factory=list)

    def chart_files(self) -> list[str]:
        """Return the file names of every chart in the document, in page order."""
        return [chart.file for section in self.sections for chart in section.charts]


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("serving.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(document: ReportDocument) -> str:
    """Render ``document`` as a standalone HTML page (PNG charts are linked by file name)."""
    labels = {
        key: text(f"report.page.{key}", document.locale)
        for key in ("sources", "chart_keys", "warnings", "generated_by", "language")
    }
    return _environment().get_template(TEMPLATE).render(document=document, labels=labels)


def write_html(document: ReportDocument, path: Path) -> Path:
    """Write ``document`` as HTML to ``path`` (UTF-8) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(document), encoding="utf-8")
    logger.info("wrote %s report (%s) to %s", document.kind, document.locale, path)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table of report numbers as CSV with a byte-order mark, so Excel reads Chinese as UTF-8.

    Text cells that a spreadsheet would run as a formula get a leading apostrophe.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    defuse_formulas(frame).to_csv(path, index=False, encoding="utf-8-sig")
    return path


def report_file_name(kind: str, locale: Locale) -> str:
    """Return the HTML file name of report ``kind`` in ``locale``, such as ``funnel.zh-CN.html``."""
    return f"{kind}.{locale}.html"


def write_documents(
    kind: str, locales: Sequence[Locale], out_dir: Path, build: Callable[[Locale], ReportDocument]
) -> list[Path]:
    """Build and write report ``kind`` once per locale, each page linking to the others.

    Returns the HTML paths and the chart paths of every page.
    """
    paths = []
    for locale in locales:
        document = build(locale)
        document.alternates = [
            (LANGUAGE_NAMES[other], report_file_name(kind, other)) for other in locales if other != locale
        ]
        paths.append(write_html(document, out_dir / report_file_name(kind, locale)))
        paths += [out_dir / name for name in document.chart_files() if (out_dir / name) not in paths]
    return paths
