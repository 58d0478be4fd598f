"""Generate a synthetic CRM history into a data folder, chunk by chunk.

Entry point: ``generate_history(config, out_dir)``. The folder gets the five canonical
tables and ``leads.attributes.json``, exactly as an import would produce them. Beside them,
``ground_truth/`` stores what no CRM records: each lead's latent quality and true conversion
probability per tier, each rep's own effect, and the generator config with its seed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from data.folder import write_attributes, write_table
from data.schema import TABLE_NAMES, TIERS
from data.synthetic.activities import draw_activities
from data.synthetic.assignment import assign_owners
from data.synthetic.config import GeneratorConfig
from data.synthetic.funnel import NO_TIME, WON, FunnelOutcome, run_funnel
from data.synthetic.orders import draw_orders
from data.synthetic.population import LeadVocabulary, draw_leads
from data.synthetic.randomness import CounterRandom
from data.synthetic.reps import Roster, build_roster, roster_frame, roster_truth_frame
from data.synthetic.tables import (
    LEAD_ATTRIBUTES,
    TRUTH_COLUMNS,
    activity_columns,
    lead_columns,
    order_columns,
    stage_change_columns,
    truth_columns,
    truth_schema,
)
from data.synthetic.timeline import ArrivalCurve, HistoryWindow
from data.synthetic.writer import ChunkedParquetWriter, canonical_schema
from data.validate import coerce_canonical_dtypes
from leadscore.errors import ConfigError

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "leadscore-synthetic/1"
TRUTH_DIR = "ground_truth"
SLOW_CONTACT_HOURS = 48.0


@dataclass
class GenerationSummary:
    """Row counts and headline rates of a generated history."""

    out_dir: str
    leads: int = 0
    activities: int = 0
    stage_changes: int = 0
    orders: int = 0
    reps: int = 0
    won_by_end: int = 0
    converted_eventually: int = 0
    contacted: int = 0
    slow_first_contacts: int = 0
    chunks: int = 0
    seconds: float = field(default=0.0, compare=False)

    @property
    def conversion_rate(self) -> float:
        """Share of leads won before the history end."""
        return self.won_by_end / self.leads if self.leads else math.nan

    @property
    def activities_per_lead(self) -> float:
        return self.activities / self.leads if self.leads else math.nan

    @property
    def slow_first_contact_share(self) -> float:
        """Share of contacted leads whose first contact came more than 48 hours after intake."""
        return self.slow_first_contacts / self.contacted if self.contacted else math.nan

    def statistics(self) -> dict[str, object]:
        """Return the counts and rates, without the run time, for the ground-truth JSON."""
        counts = {key: value for key, value in asdict(self).items() if key not in ("seconds", "out_dir")}
        rates = {
            "conversion_rate_by_end": round(self.conversion_rate, 6),
            "conversion_rate_eventual": round(self.converted_eventually / self.leads, 6),
            "activities_per_lead": round(self.activities_per_lead, 4),
            "first_contact_over_48h_share": round(self.slow_first_contact_share, 6),
        }
        return {**counts, **rates}


def generate_history(config: GeneratorConfig, out_dir: Path, *, overwrite: bool = False) -> GenerationSummary:
    """Write a synthetic CRM history of ``config.leads`` leads into ``out_dir``.

    Raises ``ConfigError`` when ``out_dir`` already contains canonical tables and ``overwrite``
    is false. Equal configs give byte-identical files; configs that differ only in
    ``chunk_size`` give equal table contents in differently sized Parquet row groups.
    """
    out_dir = Path(out_dir)
    _prepare_folder(out_dir, overwrite=overwrite)
    started = time.perf_counter()
    context = _Context.from_config(config)
    summary = GenerationSummary(out_dir=str(out_dir), reps=len(context.roster))
    logger.info(
        "generating %d leads with seed %d into %s: %d reps, %d months from %s, chunks of %d",
        config.leads,
        config.seed,
        out_dir,
        len(context.roster),
        config.months,
        config.start,
        config.chunk_size,
    )

    schemas = {
        "leads.parquet": canonical_schema("leads", LEAD_ATTRIBUTES),
        "activities.parquet": canonical_schema("activities"),
        "stage_changes.parquet": canonical_schema("stage_changes"),
        "orders.parquet": canonical_schema("orders"),
        f"{TRUTH_DIR}/leads.parquet": truth_schema(),
    }
    with ExitStack() as stack:
        writers = {
            name: stack.enter_context(ChunkedParquetWriter(out_dir / name, schema))
            for name, schema in schemas.items()
        }
        n_chunks = math.ceil(config.leads / config.chunk_size)
        for chunk in range(n_chunks):
            first = chunk * config.chunk_size
            index = np.arange(first, min(first + config.chunk_size, config.leads), dtype=np.int64)
            outputs = _generate_chunk(context, index, summary)
            for name, columns in outputs.items():
                writers[name].write(columns)
            logger.info(
                "chunk %d/%d: leads %d-%d, %d activities, %d orders, %.1f s elapsed",
                chunk + 1,
                n_chunks,
                first + 1,
                first + len(index),
                len(outputs["activities.parquet"]["activity_id"]),
                len(outputs["orders.parquet"]["order_id"]),
                time.perf_counter() - started,
            )

    _write_roster(config, context.roster, out_dir)
    write_attributes(out_dir, list(LEAD_ATTRIBUTES))
    _write_truth_json(config, context.window, summary, out_dir / TRUTH_DIR)
    summary.seconds = time.perf_counter() - started
    logger.info(
        "generated %d leads in %.1f s: %.1f%% won by the end, %.1f activities per lead",
        summary.leads,
        summary.seconds,
        100 * summary.conversion_rate,
        summary.activities_per_lead,
    )
    return summary


@dataclass
class _Context:
    """What every chunk shares: config, random numbers, calendar, categories and the team."""

    config: GeneratorConfig
    random: CounterRandom
    window: HistoryWindow
    curve: ArrivalCurve
    vocabulary: LeadVocabulary
    roster: Roster

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> _Context:
        random = CounterRandom(config.seed)
        window = HistoryWindow.from_config(config)
        return cls(
            config=config,
            random=random,
            window=window,
            curve=ArrivalCurve(config, window),
            vocabulary=LeadVocabulary.from_config(config),
            roster=build_roster(config, window, random),
        )


def _generate_chunk(
    context: _Context, index: np.ndarray, summary: GenerationSummary
) -> dict[str, dict[str, pa.Array]]:
    """Draw the leads numbered ``index`` and return their columns per output file."""
    config, random, window, roster = context.config, context.random, context.window, context.roster
    created = context.curve.arrival_times(random, index, config.leads)
    leads = draw_leads(config, context.vocabulary, random, index, created, window.drift_weight(created))
    owner = assign_owners(config, roster, random, leads)
    funnel = run_funnel(config, context.vocabulary, roster, random, leads, owner)
    activities = draw_activities(config, context.vocabulary, random, leads, funnel, window.end)
    orders = draw_orders(config, context.vocabulary, random, leads, funnel, window.end)

    outputs = {
        "leads.parquet": lead_columns(context.vocabulary, roster, leads, funnel, window.end),
        "activities.parquet": activity_columns(leads, funnel, roster, activities),
        "stage_changes.parquet": stage_change_columns(leads, funnel, window.end),
        "orders.parquet": order_columns(leads, orders),
        f"{TRUTH_DIR}/leads.parquet": truth_columns(TIERS, roster, leads, funnel, orders),
    }
    _count_chunk(
        summary,
        funnel,
        window.end,
        len(index),
        len(activities),
        len(orders),
        len(outputs["stage_changes.parquet"]["lead_id"]),
    )
    return outputs


def _prepare_folder(out_dir: Path, *, overwrite: bool) -> None:
    existing = [name for name in TABLE_NAMES if (out_dir / f"{name}.parquet").exists()]
    if existing and not overwrite:
        raise ConfigError(
            f"{out_dir} already contains {', '.join(name + '.parquet' for name in existing)}; "
            "choose an empty folder or pass overwrite=True (--overwrite on the command line)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)


def _count_chunk(
    summary: GenerationSummary,
    funnel: FunnelOutcome,
    history_end: int,
    leads: int,
    activities: int,
    orders: int,
    stage_changes: int,
) -> None:
    won_at = funnel.stage_at[:, WON]
    summary.chunks += 1
    summary.leads += leads
    summary.activities += activities
    summary.orders += orders
    summary.stage_changes += stage_changes
    summary.won_by_end += int(((won_at != NO_TIME) & (won_at < history_end)).sum())
    summary.converted_eventually += int(funnel.won.sum())
    summary.contacted += int(funnel.contacted.sum())
    summary.slow_first_contacts += int(
        (np.nan_to_num(funnel.delay_hours, nan=0.0) > SLOW_CONTACT_HOURS).sum()
    )


def _write_roster(config: GeneratorConfig, roster: Roster, out_dir: Path) -> None:
    write_table(coerce_canonical_dtypes("reps", roster_frame(config, roster)), out_dir, "reps")
    truth = roster_truth_frame(config, roster)
    truth_path = out_dir / TRUTH_DIR / "reps.parquet"
    temporary = truth_path.with_name(truth_path.name + ".tmp")
    truth.to_parquet(temporary, index=False)
    temporary.replace(truth_path)


def _write_truth_json(
    config: GeneratorConfig, window: HistoryWindow, summary: GenerationSummary, truth_dir: Path
) -> None:
    def iso(micros: int) -> str:
        return np.datetime64(micros, "us").astype(str) + "Z"

    payload = {
        "generator": GENERATOR_VERSION,
        "seed": config.seed,
        "history": {"start": iso(window.start), "end": iso(window.end), "timezone": "Asia/Shanghai (UTC+8)"},
        "drift": {
            "enabled": config.drift.enabled,
            "start": iso(window.drift_start),
            "full_at": iso(window.drift_start + window.drift_ramp),
            "conversion_shift": config.drift.conversion_shift,
            "channel_weights_before": {name: spec.weight for name, spec in config.channels.items()},
            "channel_weights_after": {name: spec.drift_weight for name, spec in config.channels.items()},
        },
        "statistics": summary.statistics(),
        "files": {
            "leads.parquet": TRUTH_COLUMNS,
            "reps.parquet": {
                "rep_id": "Rep id, as in reps.parquet.",
                "tier": "Tier.",
                "rep_effect": "The rep's own conversion logit effect, on top of the tier effect.",
                "left_at": "When the rep left; missing for reps still employed.",
                "is_manager": "Whether the rep manages a region or heads sales.",
            },
        },
        "config": config.model_dump(mode="json"),
    }
    text = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=False)
    (truth_dir / "generator.json").write_text(text + "\n", "utf-8")
