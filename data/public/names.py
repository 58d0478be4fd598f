"""Names of the public datasets, importable without pandas so the CLI can list them cheaply."""

from __future__ import annotations

X_EDUCATION = "x-education"
BANK_MARKETING = "bank-marketing"
CDNOW = "cdnow"
PUBLIC_DATASET_NAMES: tuple[str, ...] = (X_EDUCATION, BANK_MARKETING, CDNOW)
