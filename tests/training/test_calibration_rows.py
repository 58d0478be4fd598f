"""``calibration_rows`` sizes the calibration fold on realistic snapshots.

Real training frames have several snapshots per lead, and the split drops a row whose lead
already sits in an earlier fold, so a share of the rows alone gave about half the rows asked for.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.train import TrainOptions, split_snapshots

SNAPSHOTS_PER_LEAD = 3
REQUESTED_ROWS = 200


def _repeated_lead_frame(leads: int) -> pd.DataFrame:
    """Return snapshots of ``leads`` leads, each seen at three cutoffs 20 days apart."""
    start = pd.Timestamp("2024-01-01", tz="UTC")
    rows = []
    for index in range(leads):
        created = start + pd.Timedelta(hours=6 * index)
        for step in range(SNAPSHOTS_PER_LEAD):
            rows.append(
                {
                    "lead_id": f"L{index}",
                    "cutoff": created + pd.Timedelta(days=20 * step),
                    "converted": index % 7 == 0,
                }
            )
    return pd.DataFrame(rows).sort_values("cutoff", ignore_index=True)


def test_calibration_rows_with_repeated_leads(tmp_path: Path) -> None:
    frame = _repeated_lead_frame(1500)
    options = TrainOptions(data_dir=tmp_path, calibration_rows=REQUESTED_ROWS)

    split = split_snapshots(options, frame)

    assert len(split.calibration) >= 0.9 * REQUESTED_ROWS, (
        f"asked for {REQUESTED_ROWS} calibration rows, the fold has {len(split.calibration)}"
    )
