"""Fixtures of the data-stage tests: tiny CRM export files written into the test's tmp_path."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest


class CrmFiles:
    """Writes small export files into one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def csv(self, name: str, text: str, encoding: str = "utf-8") -> Path:
        """Write ``text`` (rows separated by newlines) in ``encoding`` and return the path."""
        path = self.folder / name
        path.write_bytes(text.encode(encoding))
        return path

    def xlsx(self, name: str, rows: Sequence[Sequence[object]], sheet: str = "Sheet1") -> Path:
        """Write ``rows`` (header first) into a one-sheet workbook and return the path."""
        workbook = openpyxl.Workbook()
        worksheet = workbook.active
        assert worksheet is not None
        worksheet.title = sheet
        for row in rows:
            worksheet.append(list(row))
        path = self.folder / name
        workbook.save(path)
        return path


@pytest.fixture
def crm_files(tmp_path: Path) -> CrmFiles:
    """A writer of CRM export files into a folder ``inputs`` under the test's tmp_path."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    return CrmFiles(folder)
