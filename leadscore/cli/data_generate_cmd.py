"""``leadscore data generate``: write a synthetic CRM history with its ground truth."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click


@click.command("generate")
@click.option(
    "--leads",
    "n_leads",
    type=click.IntRange(min=1),
    default=None,
    help="Number of leads to generate [default: the leads value of the --config file; one of the two "
    "is required].",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Random seed; equal seeds give identical files [default: 0].",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Data folder to write the five tables, leads.attributes.json and ground_truth/ into.",
)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day of the history, YYYY-MM-DD, China Standard Time [default: 2024-01-01].",
)
@click.option(
    "--months",
    type=click.IntRange(1, 120),
    default=None,
    help="Length of the history in months [default: 18].",
)
@click.option(
    "--chunk-size",
    type=click.IntRange(min=1),
    default=None,
    help="Leads generated and written per chunk; bounds memory, not the result [default: 50000].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML, TOML or JSON file with any generator setting; the options above override it "
    "[default: none, the built-in settings].",
)
@click.option("--overwrite", is_flag=True, help="Replace tables already in the output folder.")
def generate_command(
    n_leads: int | None,
    seed: int | None,
    out_dir: Path,
    start: dt.datetime | None,
    months: int | None,
    chunk_size: int | None,
    config_path: Path | None,
    overwrite: bool,
) -> None:
    """Generate a seeded synthetic CRM history of a Chinese SME B2B funnel into a data folder.

    The tables pass the same validation as imported data; the latent quality, true
    conversion probabilities and rep effects go to ground_truth/ beside them.
    """
    from data.synthetic.config import load_generator_config
    from data.synthetic.generate import generate_history

    config = load_generator_config(
        config_path,
        leads=n_leads,
        seed=seed,
        start=start.date() if start is not None else None,
        months=months,
        chunk_size=chunk_size,
    )
    summary = generate_history(config, out_dir, overwrite=overwrite)
    click.echo(
        f"wrote {summary.leads:,} leads, {summary.activities:,} activities, "
        f"{summary.stage_changes:,} stage changes, {summary.orders:,} orders and {summary.reps:,} reps "
        f"to {out_dir} in {summary.seconds:.1f} s"
    )
    click.echo(
        f"won by the history end: {100 * summary.conversion_rate:.1f} %; "
        f"activities per lead: {summary.activities_per_lead:.1f}; "
        f"first contacts after 48 h: {100 * summary.slow_first_contact_share:.1f} %"
    )
    click.echo(f"ground truth: {out_dir / 'ground_truth'}")
