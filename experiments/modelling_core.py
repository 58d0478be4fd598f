"""Modelling-core report: conversion model against baselines, time vs random split, LTV candidates.

Runs the training stage's building blocks on one data folder, without MLflow:

1. Conversion: the training spine with labels and features, a time split (purge = the
   conversion horizon, incomplete labels excluded), the feature spec fitted on the training
   fold, then the LightGBM conversion model (calibrated on the calibration fold), the
   logistic baseline and the rule score, all scored on the same test fold.
2. The same LightGBM model on a random split by lead, to show how much a random split
   overstates the metrics.
3. LTV: one row per lead at its first cutoff, a time split with purge = the LTV horizon, and
   the three LTV candidates (hurdle with gamma, hurdle with log1p, Tweedie), compared on
   validation and on test.

Run from the repository root, for example on a synthetic history:
    .venv/bin/leadscore data generate --leads 60000 --months 36 --seed 7 --out /tmp/synth60k
    .venv/bin/python -m experiments.modelling_core --data /tmp/synth60k \
        --ltv-horizon-days 365 --out experiments/results/modelling-core.md
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data.folder import CanonicalTables, read_data_dir
from features.catalog import FeatureDef
from features.config import FeatureConfig
from features.labels import attach_labels
from features.pipeline import build_features, feature_definitions
from features.spec import FeatureSpec
from features.spine import training_spine
from leadscore.logs import configure_logging
from training import metrics
from training.baselines.logistic import fit_logistic
from training.baselines.rules import fit_rule_model
from training.boosting import Fold
from training.conversion import fit_conversion
from training.ltv import CANDIDATES, fit_ltv
from training.split import SplitIndices, time_split

logger = logging.getLogger("experiments.modelling_core")


@dataclass
class Prepared:
    """A labelled feature frame with the feature definitions it was built with."""

    frame: pd.DataFrame
    definitions: list[FeatureDef]


def prepare(tables: CanonicalTables, config: FeatureConfig) -> Prepared:
    spine = training_spine(tables, config)
    labelled = attach_labels(spine, tables, config)
    frame = build_features(labelled, tables, config)
    return Prepared(frame.reset_index(drop=True), feature_definitions(config, tables.attributes))


def folds_for(prepared: Prepared, split: SplitIndices, label: str) -> tuple[FeatureSpec, dict[str, Fold]]:
    spec = FeatureSpec.fit(prepared.frame.iloc[split.train], prepared.definitions)
    y = prepared.frame[label].to_numpy(dtype=np.float64)
    folds = {}
    for name in ("train", "valid", "calibration", "test"):
        rows = getattr(split, name)
        if rows.size:
            matrix = spec.transform(prepared.frame.iloc[rows]).matrix.reset_index(drop=True)
            folds[name] = Fold(matrix, y[rows])
    return spec, folds


def classification_row(name: str, y: np.ndarray, p: np.ndarray) -> dict[str, object]:
    return {
        "model": name,
        "roc_auc": metrics.roc_auc(y, p),
        "pr_auc": metrics.pr_auc(y, p),
        "brier": metrics.brier(y, p),
        "ece": metrics.expected_calibration_error(y, p),
        "mean_p": float(np.mean(p)),
        "rate": float(np.mean(y)),
    }


def conversion_section(prepared: Prepared, config: FeatureConfig, seed: int) -> tuple[list[str], dict]:
    horizon = pd.Timedelta(days=config.horizon_days)
    split = time_split(prepared.frame, purge=horizon, complete_column="label_complete")
    _, folds = folds_for(prepared, split, "converted")
    model = fit_conversion(folds["train"], folds["valid"], folds["calibration"], seed=seed)

    frame = prepared.frame
    train_frame, test_frame = frame.iloc[split.train], frame.iloc[split.test]
    rules = fit_rule_model(train_frame, folds["train"].y)
    logistic = fit_logistic(train_frame, prepared.definitions, seed=seed)

    test = folds["test"]
    rows = [
        classification_row("LightGBM, raw", test.y, model.predict_raw(test.matrix)),
        classification_row(
            f"LightGBM, calibrated ({model.calibrator.method})", test.y, model.predict_calibrated(test.matrix)
        ),
        classification_row("logistic regression", test.y, logistic.predict_proba(test_frame)),
        classification_row("rule score (Platt)", test.y, rules.predict_proba(test_frame)),
    ]
    lines = [
        "## Conversion on a time split",
        "",
        f"Rows per fold: {split.counts()}.",
        f"Fold starts: {', '.join(f'{k} {v:%Y-%m-%d}' for k, v in split.boundaries.items())}.",
        f"LightGBM stopped at {model.best_iteration} rounds.",
        f"Calibrator cross-fit scores: {model.calibrator.selection}.",
        f"Data sufficiency: {model.sufficiency.level}.",
        "",
        *markdown_table(rows, ["model", "roc_auc", "pr_auc", "brier", "ece", "mean_p", "rate"]),
        "",
    ]
    return lines, {"split": split, "model": model, "test_auc": rows[1]["roc_auc"], "test_ece": rows[1]["ece"]}


def random_split(frame: pd.DataFrame, seed: int) -> SplitIndices:
    """Split leads (not rows) at random 60/15/10/15, keeping each lead in one fold."""
    complete = frame["label_complete"].to_numpy(dtype=bool)
    leads = frame["lead_id"].unique()
    rng = np.random.default_rng(seed)
    draw = pd.Series(rng.random(len(leads)), index=leads)
    position = draw.reindex(frame["lead_id"]).to_numpy()
    cuts = {"train": (0.0, 0.60), "valid": (0.60, 0.75), "calibration": (0.75, 0.85), "test": (0.85, 1.0)}
    rows = {
        name: np.flatnonzero(complete & (position >= low) & (position < high))
        for name, (low, high) in cuts.items()
    }
    return SplitIndices(rows["train"], rows["valid"], rows["test"], rows["calibration"], boundaries={})


def random_split_section(prepared: Prepared, seed: int, time_result: dict) -> list[str]:
    split = random_split(prepared.frame, seed)
    _, folds = folds_for(prepared, split, "converted")
    model = fit_conversion(folds["train"], folds["valid"], folds["calibration"], seed=seed)
    test = folds["test"]
    calibrated = model.predict_calibrated(test.matrix)
    random_auc = metrics.roc_auc(test.y, calibrated)
    random_ece = metrics.expected_calibration_error(test.y, calibrated)
    return [
        "## Time split against a random split by lead",
        "",
        "The same model and fold sizes, with leads assigned to folds at random instead of by cutoff.",
        "",
        "| split | test ROC AUC | test ECE |",
        "|---|---|---|",
        f"| time (purged) | {time_result['test_auc']:.4f} | {time_result['test_ece']:.4f} |",
        f"| random by lead | {random_auc:.4f} | {random_ece:.4f} |",
        "",
    ]


def ltv_section(tables: CanonicalTables, config: FeatureConfig, seed: int) -> list[str]:
    first_only = FeatureConfig(
        horizon_days=config.horizon_days,
        ltv_horizon_days=config.ltv_horizon_days,
        max_snapshots=0,
        timezone=config.timezone,
    )
    prepared = prepare(tables, first_only)
    split = time_split(
        prepared.frame,
        purge=pd.Timedelta(days=config.ltv_horizon_days),
        calibration_fraction=0.0,
        lead_column=None,
        complete_column="value_complete",
    )
    _, folds = folds_for(prepared, split, "value")
    train, valid, test = folds["train"], folds["valid"], folds["test"]
    rows = []
    for kind in CANDIDATES:
        model = fit_ltv(train, valid, candidates=[kind], seed=seed)
        predictions = model.predict(test.matrix)
        rows.append(
            {
                "candidate": kind,
                "valid_gini": model.validation[kind]["normalized_gini"],
                "valid_spearman": model.validation[kind]["spearman"],
                "test_gini": metrics.normalized_gini(test.y, predictions),
                "test_spearman": metrics.spearman(test.y, predictions),
                "test_top_decile_share": metrics.top_decile_share(test.y, predictions),
                "test_mean_pred": float(predictions.mean()),
                "test_mean_value": float(test.y.mean()),
            }
        )
    chosen = fit_ltv(train, valid, seed=seed)
    labels = chosen.labels
    return [
        f"## LTV candidates ({config.ltv_horizon_days}-day horizon, one row per lead at its first cutoff)",
        "",
        f"Rows per fold: {split.counts()}.",
        f"Training labels: {labels.to_dict() if labels else {}}.",
        f"Chosen on validation: **{chosen.kind}** "
        "(highest normalized Gini; Spearman breaks ties within 0.005).",
        "",
        *markdown_table(
            rows,
            [
                "candidate",
                "valid_gini",
                "valid_spearman",
                "test_gini",
                "test_spearman",
                "test_top_decile_share",
                "test_mean_pred",
                "test_mean_value",
            ],
        ),
        "",
    ]


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="Data folder with the canonical tables.")
    parser.add_argument("--out", type=Path, required=True, help="Markdown report to write.")
    parser.add_argument("--ltv-horizon-days", type=int, default=365, help="LTV label window in days.")
    parser.add_argument("--seed", type=int, default=7, help="Seed for LightGBM and the random split.")
    parser.add_argument(
        "--data-command", default="", help="Command that produced the data folder, quoted in the report."
    )
    args = parser.parse_args()
    configure_logging("INFO")

    started = time.perf_counter()
    tables = read_data_dir(args.data)
    config = FeatureConfig(ltv_horizon_days=args.ltv_horizon_days)
    prepared = prepare(tables, config)
    conversion_lines, time_result = conversion_section(prepared, config, args.seed)
    random_lines = random_split_section(prepared, args.seed, time_result)
    ltv_lines = ltv_section(tables, config, args.seed)
    elapsed = time.perf_counter() - started

    header = [
        "# Modelling core on one data folder",
        "",
        f"Data: `{args.data}` ({len(tables.leads):,} leads, {len(tables.orders):,} order lines). "
        f"Snapshot rows: {len(prepared.frame):,}.",
        *([f"Data folder made with: `{args.data_command}`"] if args.data_command else []),
        f"Command: `.venv/bin/python -m experiments.modelling_core --data {args.data} "
        f"--ltv-horizon-days {args.ltv_horizon_days} --seed {args.seed} --out {args.out}`",
        f"Runtime: {elapsed:.0f} s on {platform.machine()} with {os.cpu_count()} CPUs, "
        "LightGBM with 2 threads, other jobs sharing the machine.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join([*header, *conversion_lines, *random_lines, *ltv_lines]), encoding="utf-8")
    logger.info("wrote %s in %.0f s", args.out, elapsed)


if __name__ == "__main__":
    main()
