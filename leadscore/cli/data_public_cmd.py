"""``leadscore data public``: turn a public dataset into a canonical data folder."""

from __future__ import annotations

from pathlib import Path

import click

from data.public.names import PUBLIC_DATASET_NAMES


@click.command("public")
@click.argument("name", type=click.Choice(PUBLIC_DATASET_NAMES))
@click.option(
    "--path",
    "source_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The dataset's raw file, or the folder that contains it under its usual name.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder to write the tables, public_source.json and public_rejects.csv into.",
)
@click.option("--overwrite", is_flag=True, help="Replace tables already in the output folder.")
def public_command(name: str, source_path: Path, out_dir: Path, overwrite: bool) -> None:
    """Adapt the public dataset NAME into a data folder in the canonical layout.

    Every source row ends up either in the tables or in public_rejects.csv with its reason.
    public_source.json records the file's sha256, the row counts and how timestamps were
    reconstructed.
    """
    from data.public import adapt_public_dataset

    record = adapt_public_dataset(name, source_path, out_dir, overwrite=overwrite)
    click.echo(
        f"{name}: {record['rows_read']:,} rows read, {record['rows_accepted']:,} accepted, "
        f"{record['rows_rejected']:,} rejected"
    )
    tables = record["tables"]
    if isinstance(tables, dict):
        click.echo("tables: " + ", ".join(f"{table} {count:,}" for table, count in tables.items()))
    click.echo(f"written to {out_dir} (see public_source.json)")
