"""``leadscore data import`` and ``leadscore data validate``: CRM exports in, data folder checked."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from data.schema import DEFAULT_TIMEZONE, TABLE_NAMES

if TYPE_CHECKING:
    from data.folder import CanonicalTables

_LOCALE_HELP = "[default: the locale setting (LEADSCORE_LOCALE or leadscore.toml), else en]."


@click.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--table", required=True, type=click.Choice(TABLE_NAMES), help="Canonical table that the file contains."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder to write TABLE.parquet and TABLE.rejects.csv into; rows already there are merged.",
)
@click.option(
    "--mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="TOML or YAML mapping file: column renames, custom attributes, value maps, date formats "
    "[default: none, headers are matched to canonical column names and their aliases only].",
)
@click.option(
    "--timezone",
    default=None,
    help=f"IANA time zone of timestamps without an offset [default: the mapping's, else {DEFAULT_TIMEZONE}].",
)
@click.option(
    "--date-format",
    "date_formats",
    multiple=True,
    help="strptime format tried before the built-in ones, e.g. '%d/%m/%Y %H:%M'; repeatable "
    "[default: none, only the mapping's and the built-in formats].",
)
@click.option("--sheet", default=None, help="XLSX worksheet to read [default: the first].")
@click.option(
    "--locale",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="Language of the reasons in TABLE.rejects.csv, of the printed summary and of error messages "
    + _LOCALE_HELP,
)
def import_command(
    path: Path,
    table: str,
    out_dir: Path,
    mapping: Path | None,
    timezone: str | None,
    date_formats: tuple[str, ...],
    sheet: str | None,
    locale: str | None,
) -> None:
    """Import a CRM export (CSV, XLSX or Parquet) at PATH into one canonical table.

    Exits 0 when the import completed, also when rows were rejected (see TABLE.rejects.csv),
    and 2 when the file, the mapping or the headers cannot be used.
    """
    from data.importer import import_file
    from leadscore.i18n import errors_in_locale, parse_locale
    from leadscore.settings import load_settings

    chosen_locale = parse_locale(locale or load_settings().locale)
    with errors_in_locale(chosen_locale):
        summary = import_file(
            path,
            table,
            out_dir,
            mapping=mapping,
            timezone=timezone,
            date_formats=date_formats,
            sheet=sheet,
            locale=chosen_locale,
        )
    click.echo(summary.format())


@click.command("validate")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--locale",
    type=click.Choice(["en", "zh-CN"]),
    default=None,
    help="Language of the reports, the problem texts and error messages " + _LOCALE_HELP,
)
def validate_command(directory: Path, locale: str | None) -> None:
    """Validate every table of the data folder DIRECTORY and the references between them.

    Prints one report per table. Exits 1 when any problem is found, 2 when the folder
    cannot be read.
    """
    from data.import_messages import validation_text
    from data.validate import validate_tables
    from leadscore.i18n import errors_in_locale, parse_locale
    from leadscore.settings import load_settings

    chosen_locale = parse_locale(locale or load_settings().locale)
    with errors_in_locale(chosen_locale):
        reports = validate_tables(_read_folder(directory))
    for report in reports.values():
        click.echo(report.format(locale=chosen_locale))
    problems = sum(len(report.problems) for report in reports.values())
    if problems:
        click.echo(validation_text("summary.problems", count=problems).text(chosen_locale), err=True)
        sys.exit(1)
    click.echo(validation_text("summary.clean").text(chosen_locale))


def _read_folder(directory: Path) -> CanonicalTables:
    """Read every table of the data folder ``directory``, raising ``InputFileError`` when that fails."""
    import pyarrow as pa

    from data.folder import read_data_dir, table_path
    from data.import_messages import validation_text
    from leadscore.errors import InputFileError

    if directory.is_dir() and not any(table_path(directory, name).exists() for name in TABLE_NAMES):
        files = ", ".join(f"{name}.parquet" for name in TABLE_NAMES)
        raise InputFileError(validation_text("error.no_tables", directory=directory, files=files))
    try:
        # NOTE: data.folder raises its own errors (folder not found, damaged table or attributes
        # file) as plain English text, so those stay English with --locale zh-CN.
        return read_data_dir(directory, require=())
    except (OSError, ValueError, pa.ArrowException) as error:
        raise InputFileError(
            validation_text("error.unreadable", directory=directory, detail=str(error))
        ) from error
