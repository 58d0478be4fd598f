"""``leadscore demo``: the main job end to end on generated data."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the data, MLflow store, routing database, reports and service log.",
)
@click.option(
    "--leads",
    type=click.IntRange(min=500),
    default=6000,
    show_default=True,
    help="Synthetic leads to generate for training.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Seed of the generator, Optuna and LightGBM.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Optuna trials for the conversion model.",
)
@click.option(
    "--dataset",
    type=click.Choice(["synthetic", "bank-marketing"]),
    default="synthetic",
    show_default=True,
    help="Train on generated history, or on the public UCI Bank Marketing set (needs --bank-marketing).",
)
@click.option(
    "--bank-marketing",
    "bank_marketing_path",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="Path of bank-additional-full.csv; required by --dataset bank-marketing [default: none].",
)
def demo(
    out_dir: Path, leads: int, seed: int, trials: int, dataset: str, bank_marketing_path: Path | None
) -> None:
    """Generate history, train and register the models, serve, route new leads, write reports."""
    from leadscore.demo import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            out_dir=out_dir,
            leads=leads,
            seed=seed,
            trials=trials,
            dataset=dataset,
            bank_marketing_path=bank_marketing_path,
        ),
        echo=click.echo,
    )
