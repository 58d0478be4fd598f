"""Fonts for chart text: matplotlib's DejaVu Sans plus, when one is installed, a font with Chinese glyphs.

Only text drawn into the PNG files depends on the fonts found here, because the browser draws
the HTML around each chart with its own fonts. When no Chinese font exists,
``ChartFonts.can_draw`` is False for Chinese text and the charts show short keys instead (see
``serving.reports.charts``), so nothing is drawn as empty boxes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from matplotlib import font_manager
from matplotlib.ft2font import FT2Font

from leadscore.errors import ConfigError

logger = logging.getLogger(__name__)

BASE_FAMILY = "DejaVu Sans"
# Characters a font must contain to count as a Chinese (Simplified) font.
CJK_PROBE_TEXT = "线索转化率销售阶段渠道"
# Families tried first, in this order; any other installed font that covers the probe text is
# accepted after them.
PREFERRED_CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "Heiti SC",
    "Sarasa Gothic SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
# Parts of the file names of common Chinese fonts, to find one that matplotlib's cache lacks.
CJK_FILE_HINTS: tuple[str, ...] = ("cjk", "wqy", "sourcehan", "droidsansfallback", "simhei", "msyh", "uming")
# matplotlib 3.10+ ships this font: it maps every code point to a placeholder box.
_PLACEHOLDER_FAMILIES = frozenset({"Last Resort High-Efficiency", "Last Resort"})
INSTALL_HINT = (
    "install a Chinese font (Debian/Ubuntu: apt-get install fonts-noto-cjk or fonts-wqy-microhei) "
    "or pass --font FILE"
)


@dataclass(frozen=True)
class ChartFonts:
    """The font families charts use, in fallback order, and the code points they can draw."""

    families: tuple[str, ...]
    code_points: frozenset[int]
    cjk_font: Path | None

    @property
    def has_cjk(self) -> bool:
        return self.cjk_font is not None

    def can_draw(self, text: str) -> bool:
        """Return whether every character of ``text`` has a glyph in one of the families."""
        return all(character.isspace() or ord(character) in self.code_points for character in text)


def _code_points(path: Path) -> frozenset[int]:
    return frozenset(FT2Font(str(path)).get_charmap())


def _covers_probe(code_points: frozenset[int]) -> bool:
    return all(ord(character) in code_points for character in CJK_PROBE_TEXT)


def _font_name(path: Path) -> str:
    return font_manager.FontProperties(fname=str(path)).get_name()


def _first_covering(paths: list[Path]) -> Path | None:
    """Return the first of ``paths`` whose font covers ``CJK_PROBE_TEXT``, skipping unreadable files."""
    for path in paths:
        try:
            if _covers_probe(_code_points(path)):
                return path
        except (OSError, RuntimeError) as error:
            logger.debug("skipping unreadable font %s: %s", path, error)
    return None


def _cached_cjk_font() -> Path | None:
    """Return the best font of matplotlib's font list that covers the probe, preferred families first."""
    entries = [entry for entry in font_manager.fontManager.ttflist if entry.name not in _PLACEHOLDER_FAMILIES]
    rank = {name: position for position, name in enumerate(PREFERRED_CJK_FAMILIES)}
    entries.sort(key=lambda entry: (rank.get(entry.name, len(rank)), entry.weight != 400, entry.fname))
    return _first_covering([Path(entry.fname) for entry in entries])


def _system_cjk_font() -> Path | None:
    """Return a font file on disk that covers the probe, files named like Chinese fonts first.

    matplotlib keeps its font list in a cache written on first use and does not rescan the
    system font folders, so a font installed after that is missing from the list.
    """
    paths = sorted(Path(name) for name in font_manager.findSystemFonts())
    hinted = [path for path in paths if any(hint in path.name.lower() for hint in CJK_FILE_HINTS)]
    regular = [path for path in hinted if "regular" in path.name.lower()]
    return _first_covering(regular + hinted)


def _installed_cjk_font() -> Path | None:
    """Return an installed font that covers ``CJK_PROBE_TEXT``: from matplotlib's list, else from disk."""
    cached = _cached_cjk_font()
    if cached is not None:
        return cached

    found = _system_cjk_font()
    if found is not None:
        font_manager.fontManager.addfont(str(found))
    return found


def _build(cjk_font: Path | None) -> ChartFonts:
    base_path = Path(font_manager.findfont(BASE_FAMILY, fallback_to_default=True))
    code_points = set(_code_points(base_path))
    families = [BASE_FAMILY]
    if cjk_font is not None:
        code_points |= _code_points(cjk_font)
        families.append(_font_name(cjk_font))
    return ChartFonts(families=tuple(families), code_points=frozenset(code_points), cjk_font=cjk_font)


def latin_chart_fonts() -> ChartFonts:
    """Return the chart fonts without a Chinese font: what charts use when none is installed."""
    return _build(None)


@cache
def _discover_installed() -> ChartFonts:
    cjk_font = _installed_cjk_font()
    if cjk_font is None:
        logger.warning(
            "no font with Chinese glyphs found, so chart labels that need one are drawn as keys "
            "explained under each chart; %s",
            INSTALL_HINT,
        )
    else:
        logger.info("charts draw Chinese text with %s (%s)", _font_name(cjk_font), cjk_font)
    return _build(cjk_font)


def discover_chart_fonts(font_file: Path | None = None) -> ChartFonts:
    """Return the chart fonts: ``font_file`` when given, else the best installed Chinese font.

    Raises ConfigError when ``font_file`` cannot be read or lacks Chinese glyphs. Without
    ``font_file`` and without an installed Chinese font, a warning is logged once and the
    result draws Latin text only.
    """
    if font_file is None:
        return _discover_installed()
    path = Path(font_file)
    try:
        code_points = _code_points(path)
    except (OSError, RuntimeError) as error:
        raise ConfigError(f"font file {path} cannot be read as a TrueType/OpenType font: {error}") from None
    if not _covers_probe(code_points):
        raise ConfigError(
            f"font file {path} has no glyphs for Chinese text (tested {CJK_PROBE_TEXT!r}); "
            "pass a Simplified Chinese font such as NotoSansCJK-Regular.ttc or wqy-microhei.ttc"
        )
    font_manager.fontManager.addfont(str(path))
    return _build(path)
