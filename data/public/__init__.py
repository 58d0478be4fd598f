"""Adapters that turn public lead and transaction datasets into canonical data folders.

``PUBLIC_DATASETS`` maps each dataset name to its adapter. ``adapt_public_dataset`` reads the
raw file, or the dataset's usual file inside a folder, and writes the data folder with
``public_source.json`` and ``public_rejects.csv``. docs/public-datasets.md describes how each
set maps onto the canonical model.
"""

from __future__ import annotations

from pathlib import Path

from data.public import bank_marketing, cdnow, x_education
from data.public.source import AdaptedDataset, PublicDataset, write_adapted
from leadscore.errors import ConfigError

PUBLIC_DATASETS: dict[str, PublicDataset] = {
    x_education.NAME: PublicDataset(
        name=x_education.NAME,
        title="X Education leads (upGrad lead-scoring case study)",
        default_file=x_education.DEFAULT_FILE,
        licence="unknown; a course case-study dataset, for research and education use",
        citation="upGrad / IIIT-Bangalore Lead Scoring Case Study (X Education is a teaching pseudonym)",
        adapt=x_education.adapt,
    ),
    bank_marketing.NAME: PublicDataset(
        name=bank_marketing.NAME,
        title="UCI Bank Marketing with social and economic context",
        default_file=bank_marketing.DEFAULT_FILE,
        licence="CC BY 4.0 (as listed by the UCI Machine Learning Repository)",
        citation=(
            "S. Moro, P. Cortez and P. Rita. A Data-Driven Approach to Predict the Success of Bank "
            "Telemarketing. Decision Support Systems 62 (2014) 22-31, doi:10.1016/j.dss.2014.03.001"
        ),
        adapt=bank_marketing.adapt,
    ),
    cdnow.NAME: PublicDataset(
        name=cdnow.NAME,
        title="CDNOW customer transactions, 1997-1998 cohort",
        default_file=cdnow.DEFAULT_FILE,
        licence="unknown; distributed by Fader and Hardie for research and teaching",
        citation=(
            "P. S. Fader, B. G. S. Hardie and K. L. Lee. Counting Your Customers the Easy Way: An "
            "Alternative to the Pareto/NBD Model. Marketing Science 24(2) (2005) 275-284"
        ),
        adapt=cdnow.adapt,
    ),
}


def resolve_source_file(dataset: PublicDataset, path: Path) -> Path:
    """Return ``path`` itself for a file, or the dataset's default file inside a folder."""
    path = Path(path)
    return path / dataset.default_file if path.is_dir() else path


def adapt_public_dataset(
    name: str, path: Path, out_dir: Path, *, overwrite: bool = False
) -> dict[str, object]:
    """Adapt public dataset ``name`` from ``path`` into the data folder ``out_dir``.

    Returns the record written to ``public_source.json``. Raises ``ConfigError`` for an
    unknown name, ``InputFileError`` for a missing or unreadable file.
    """
    try:
        dataset = PUBLIC_DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown public dataset {name!r}; expected one of {', '.join(PUBLIC_DATASETS)}"
        ) from None
    source_file = resolve_source_file(dataset, path)
    adapted = dataset.adapt(source_file)
    return write_adapted(dataset, adapted, source_file, out_dir, overwrite=overwrite)


__all__ = [
    "PUBLIC_DATASETS",
    "AdaptedDataset",
    "PublicDataset",
    "adapt_public_dataset",
    "resolve_source_file",
]
