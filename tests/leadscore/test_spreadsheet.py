"""Text cells that a spreadsheet would run as a formula are written as plain text."""

from __future__ import annotations

import pandas as pd

from leadscore.spreadsheet import defuse_formulas


def test_formula_cells_get_apostrophe() -> None:
    frame = pd.DataFrame(
        {
            "channel": ['=HYPERLINK("http://x","click")', "+86 电话", "-1", "@SUM(A1)", "百度SEM", None],
            "leads": [1, -2, 3, 4, 5, 6],
        }
    )

    safe = defuse_formulas(frame)

    assert safe["channel"].iloc[:5].tolist() == [
        '\'=HYPERLINK("http://x","click")',
        "'+86 电话",
        "'-1",
        "'@SUM(A1)",
        "百度SEM",
    ]
    assert pd.isna(safe["channel"].iloc[5])
    assert safe["leads"].tolist() == [1, -2, 3, 4, 5, 6]
    assert frame["channel"].iloc[0].startswith("=")
