"""CDNOW transactions (CDNOW_master.txt, Fader and Hardie) onto the canonical model.

One data line is one purchase: customer id, date (YYYYMMDD), number of CDs and dollar value.
Each line becomes an order line: ``order_id`` is the customer id plus the line's position
among that customer's lines in file order, ``ordered_at`` the purchase date at local
midnight in ``LOCAL_TIMEZONE``, ``amount`` the dollar value in USD. Zero-value purchases are
kept and counted. Same-day repeat lines, including exact duplicates, are kept as separate
order lines: they are plausibly separate line items, and models aggregate per customer-day.

Each customer also becomes one lead, created at its first purchase and won at that moment,
so the LTV pipeline has an entity per customer. Conversion is trivially 1 here: this set is
for lifetime value only. The number of CDs has no canonical column and is not kept.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from data.public import names
from data.public.source import AdaptedDataset, RejectCollector, canonical_tables
from data.public.values import parse_numbers, parse_whole_numbers
from leadscore.errors import InputFileError

logger = logging.getLogger(__name__)

NAME = names.CDNOW
DEFAULT_FILE = "CDNOW_master.txt"
LOCAL_TIMEZONE = "America/New_York"  # CDNOW was a US online retailer
CURRENCY = "USD"
FIELDS: tuple[str, ...] = ("customer_id", "date", "number_of_cds", "dollar_value")
_DIGITS = re.compile(r"^\d+$")
CANONICAL_SOURCES: dict[str, str] = {
    "orders.order_id": "customer_id + '-' + the line's 1-based position among the customer's lines",
    "orders.customer_id": "customer_id, zero padding kept",
    "orders.ordered_at": f"date at local midnight {LOCAL_TIMEZONE}",
    "orders.amount": "dollar_value",
    "orders.currency": CURRENCY,
    "leads.lead_id": "customer_id",
    "leads.customer_id": "customer_id",
    "leads.created_at": "the customer's first purchase",
}


def adapt(path: Path) -> AdaptedDataset:
    """Read CDNOW_master.txt at ``path`` and map it onto orders, leads and stage changes."""
    raw, source_rows, header_lines = read_transactions(path)
    rejects = RejectCollector(raw, source_rows)

    customer = raw["customer_id"]
    rejects.reject(raw["extra"].ne("").to_numpy(), f"line has more than {len(FIELDS)} fields")
    rejects.reject(raw["dollar_value"].eq("").to_numpy(), f"line has fewer than {len(FIELDS)} fields")
    rejects.reject(~customer.str.match(_DIGITS).to_numpy(), "customer_id is not a string of digits")
    dates = pd.to_datetime(raw["date"], format="%Y%m%d", errors="coerce")
    rejects.reject(dates.isna().to_numpy(), "date is not a valid YYYYMMDD date")
    cds, bad_cds = parse_whole_numbers(raw["number_of_cds"])
    rejects.reject(bad_cds | (cds < 0).fillna(False).to_numpy(), "number_of_cds is not a whole number >= 0")
    amount, bad_amount = parse_numbers(raw["dollar_value"])
    rejects.reject(bad_amount | amount.isna().to_numpy(), "dollar_value is not a number")

    kept = rejects.accepted
    orders = _order_frame(customer[kept], dates[kept], amount[kept])
    leads = _lead_frame(orders)
    stage_changes = pd.concat(
        [
            pd.DataFrame({"lead_id": leads["lead_id"], "stage": "lead", "changed_at": leads["created_at"]}),
            pd.DataFrame({"lead_id": leads["lead_id"], "stage": "won", "changed_at": leads["created_at"]}),
        ]
    ).sort_index(kind="stable", ignore_index=True)

    accepted = raw[kept]
    same_day = accepted.duplicated(subset=["customer_id", "date"], keep="first")
    counts = {
        "header_lines_skipped": header_lines,
        "customers": len(leads),
        "zero_value_purchases": int((orders["amount"] == 0).sum()),
        "same_day_repeat_lines": int(same_day.sum()),
        "exact_duplicate_lines": int(accepted.duplicated(subset=list(FIELDS), keep="first").sum()),
    }
    tables = canonical_tables({"orders": orders, "leads": leads, "stage_changes": stage_changes}, [])
    first, last = orders["ordered_at"].min(), orders["ordered_at"].max()
    return AdaptedDataset(
        tables=tables,
        entity_table="orders",
        rows_read=len(raw),
        rejects=rejects.frame(),
        timestamps=(
            f"ordered_at is the purchase date (YYYYMMDD) at local midnight {LOCAL_TIMEZONE}, stored in UTC "
            f"({first} to {last}). Each customer's lead is created, and won, at its first purchase."
        ),
        mapping=CANONICAL_SOURCES,
        counts=counts,
        notes=[
            "Zero-value purchases and same-day repeat lines, exact duplicates included, are kept unmerged.",
            "number_of_cds is not kept: the orders table has no quantity column.",
            "Every lead is won at creation: use this set for lifetime value, not for conversion.",
        ],
    )


def read_transactions(path: Path) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Read the whitespace-separated lines as text and return them with their data row numbers.

    The lifetimes package adds a header line to the original headerless file. A first line
    that does not start with digits must be that header, and it is skipped, as are blank
    lines. Rows are numbered from 1 over the data lines, as ``data.validate`` numbers rows.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path} not found; pass --path to CDNOW_master.txt or its folder")
    try:
        lines = path.read_text("ascii").splitlines()
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path} is not an ASCII text file as CDNOW_master.txt is: {error}") from error
    fields = [line.split() for line in lines if line.strip()]
    header_lines = 0
    if fields and not _DIGITS.match(fields[0][0]):
        if [name.lower() for name in fields[0]] != list(FIELDS):
            raise InputFileError(
                f"{path}: the first line {lines[0].strip()!r} is neither data "
                f"nor the header {' '.join(FIELDS)}"
            )
        fields = fields[1:]
        header_lines = 1
    width = len(FIELDS)
    records = [(*row[:width], *[""] * (width - len(row)), " ".join(row[width:])) for row in fields]
    frame = pd.DataFrame(records, columns=[*FIELDS, "extra"], dtype="str")
    return frame, np.arange(1, len(frame) + 1), header_lines


def _order_frame(customer: pd.Series, dates: pd.Series, amount: pd.Series) -> pd.DataFrame:
    line = customer.groupby(customer, sort=False).cumcount() + 1
    ordered_at = pd.DatetimeIndex(dates).tz_localize(LOCAL_TIMEZONE).tz_convert("UTC").as_unit("us")
    return pd.DataFrame(
        {
            "order_id": (customer + "-" + line.map("{:03d}".format)).to_numpy(),
            "customer_id": customer.to_numpy(),
            "ordered_at": ordered_at,
            "amount": amount.to_numpy(dtype=np.float64),
            "currency": CURRENCY,
        }
    ).astype({"order_id": "str", "customer_id": "str", "currency": "str"})


def _lead_frame(orders: pd.DataFrame) -> pd.DataFrame:
    first = orders.groupby("customer_id", sort=True)["ordered_at"].min()
    return pd.DataFrame(
        {
            "lead_id": first.index.to_numpy(),
            "created_at": first.to_numpy(),
            "customer_id": first.index.to_numpy(),
        }
    ).astype({"lead_id": "str", "customer_id": "str"})
