"""Text encodings of CRM exports: UTF-8, UTF-8 with a byte order mark, and GB18030.

Chinese CRMs and Excel on Chinese Windows write GBK (a subset of GB18030); web CRMs write
UTF-8, often with a BOM so that Excel recognises it. Decoding is strict: a file that is
none of these is rejected with the byte offset of the first byte that cannot be decoded,
so no replacement characters ever reach the data.

GB18030 assigns a character to almost every byte pair, so it also decodes many UTF-8 files
that carry one damaged byte, as mojibake. When UTF-8 decoding fails but most non-ASCII
characters before and after the failure are valid UTF-8, the file is treated as damaged
UTF-8 and rejected with the offset of the bad byte instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data.import_messages import import_error
from leadscore.errors import InputFileError

# Tried in this order. UTF-8 goes first because a GB18030 decoder also accepts many UTF-8
# byte sequences (as the wrong characters), while the reverse is rare for real text.
ENCODINGS: tuple[str, ...] = ("utf-8-sig", "gb18030")
_BOM = "\ufeff"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Valid UTF-8 multibyte characters per undecodable byte above which a file is damaged UTF-8.
# GBK text read as UTF-8 yields far fewer valid characters than undecodable bytes.
_DAMAGED_UTF8_RATIO = 4
_ASCII_BYTES = bytes(range(0x80))


@dataclass(frozen=True)
class DecodedText:
    """The text of a file and the encoding it was decoded with (``utf-8``, ``utf-8-sig`` or ``gb18030``)."""

    text: str
    encoding: str


def decode_bytes(raw: bytes, source: str | Path) -> DecodedText:
    """Decode ``raw`` as UTF-8 (BOM stripped) or GB18030, or raise ``InputFileError``.

    The error names the byte offset and value at which the attempt that got furthest failed,
    and the line it is on. Text containing NUL characters is rejected too, because it is
    UTF-16 or binary data that both decoders would otherwise accept.
    """
    _reject_utf16(raw, source)
    failures: list[UnicodeDecodeError] = []
    for encoding in ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as error:
            failures.append(error)
            continue
        if failures and _is_damaged_utf8(raw):
            _raise_damaged_utf8(raw, failures[0].start, source)
        _reject_nul(text, raw, source)
        has_bom = raw.startswith(b"\xef\xbb\xbf")
        name = "utf-8" if encoding == "utf-8-sig" and not has_bom else encoding
        return DecodedText(text.removeprefix(_BOM), name)

    furthest = max(failures, key=lambda error: error.start)
    offset = furthest.start
    line = raw.count(b"\n", 0, offset) + 1
    raise InputFileError(
        import_error("undecodable", path=source, byte=f"0x{raw[offset]:02X}", offset=offset, line=line)
    )


def _reject_utf16(raw: bytes, source: str | Path) -> None:
    if raw.startswith(_UTF16_BOMS):
        raise InputFileError(import_error("utf16", path=source))


def _is_damaged_utf8(raw: bytes) -> bool:
    """Return whether ``raw`` is mostly valid UTF-8 with a few undecodable bytes."""
    # surrogateescape turns each undecodable byte into one lone surrogate, which encoding with
    # errors="ignore" drops again; the other characters round-trip to their bytes.
    text = raw.decode("utf-8", errors="surrogateescape")
    undecodable = len(raw) - len(text.encode("utf-8", errors="ignore"))
    ascii_bytes = len(raw) - len(raw.translate(None, _ASCII_BYTES))
    valid_multibyte = len(text) - ascii_bytes - undecodable
    return valid_multibyte > _DAMAGED_UTF8_RATIO * undecodable


def _raise_damaged_utf8(raw: bytes, offset: int, source: str | Path) -> None:
    line = raw.count(b"\n", 0, offset) + 1
    raise InputFileError(
        import_error("damaged_utf8", path=source, byte=f"0x{raw[offset]:02X}", offset=offset, line=line)
    )


def _reject_nul(text: str, raw: bytes, source: str | Path) -> None:
    position = text.find("\x00")
    if position < 0:
        return
    offset = raw.find(b"\x00")
    raise InputFileError(import_error("nul_byte", path=source, offset=offset))


def read_text(path: Path) -> DecodedText:
    """Read and decode a text file; see ``decode_bytes``."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputFileError(
            import_error("unreadable", path=path, detail=error.strerror or str(error))
        ) from error
    return decode_bytes(raw, path)
