"""Compute the checksum Flyway stores in flyway_schema_history.checksum.

Flyway (ChecksumCalculator.calculateChecksumForResource) does, for one file:

    reader = BufferedReader(resource.read())    # decoded with the configured encoding
    line = reader.readLine(); line = BomFilter.FilterBomFromString(line)   # first line only
    do crc32.update(line.getBytes(UTF_8)) while ((line = reader.readLine()) != null)
    return (int) crc32.getValue()               # signed 32-bit

readLine() ends a line at LF, CRLF or a lone CR and drops the terminator; a last line with
no newline still counts and a trailing newline adds no empty line. So the checksum is the
CRC-32 of the text's UTF-8 bytes with every CR and LF removed (CRC-32 over concatenated
chunks equals CRC-32 of the concatenation), and an empty file gives 0. That makes it
independent of line endings and of the file's encoding, but not of trailing spaces.

FileSystemResource.read() decodes through `charset.newDecoder()`, whose default action on
malformed input is REPORT: Flyway fails with "Unable to calculate checksum of <file> ...
Please ensure you have configured the correct file encoding with 'flyway.encoding'".
"""

from __future__ import annotations

import codecs
import zlib

from sqlmigrations.lib.exceptions import InvalidEncoding, line_at

BOM = "\ufeff"
_UTF8_BOM = codecs.BOM_UTF8
_UTF8_NAMES = frozenset({"utf-8", "utf8", "u8", "utf"})
_NO_EOL = {ord("\r"): None, ord("\n"): None}


def flyway_checksum(data: bytes, *, path: str, encoding: str = "utf-8") -> int:
    """Return Flyway's signed 32-bit checksum of a file's raw bytes."""
    if _is_utf8(encoding):
        # Fast path: validate, then CRC the bytes themselves. Valid UTF-8 round-trips
        # byte for byte through Java's String, and CR/LF bytes never occur inside a
        # multi-byte sequence, so deleting them equals dropping readLine() terminators.
        _check_utf8(data, path=path)
        body = data[3:] if data.startswith(_UTF8_BOM) else data
        return _signed(zlib.crc32(body.translate(None, b"\r\n")))
    return text_checksum(decode(data, path=path, encoding=encoding))


def text_checksum(text: str) -> int:
    """Return Flyway's checksum of already-decoded text, e.g. after placeholder replacement."""
    # BomFilter only looks at the first character of the first line.
    if text.startswith(BOM):
        text = text[1:]
    # String.getBytes(UTF_8) writes '?' for an unpaired surrogate, as errors="replace" does.
    raw = text.translate(_NO_EOL).encode("utf-8", errors="replace")
    return _signed(zlib.crc32(raw))


def decode(data: bytes, *, path: str, encoding: str = "utf-8") -> str:
    """Decode a file strictly, keeping any BOM, or raise InvalidEncoding naming the file."""
    try:
        # Java's UTF-8 decoder keeps U+FEFF as a character (unlike Python's "utf-8-sig"),
        # and Flyway strips it later; callers strip it with strip_bom().
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise _encoding_error(data, exc, path=path, encoding=encoding) from None


def strip_bom(text: str) -> str:
    """Drop one leading byte order mark, as Flyway's BomFilter does."""
    return text[1:] if text.startswith(BOM) else text


def _check_utf8(data: bytes, *, path: str) -> None:
    """Raise InvalidEncoding unless `data` is strict UTF-8."""
    if data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _encoding_error(data, exc, path=path, encoding="utf-8") from None


def _encoding_error(
    data: bytes, exc: UnicodeDecodeError, *, path: str, encoding: str
) -> InvalidEncoding:
    """Describe where decoding failed and how to fix it."""
    bad = data[exc.start : exc.end].hex(" ")
    return InvalidEncoding(
        f"not valid {encoding} (bytes {bad} at offset {exc.start}: {exc.reason});"
        " Flyway refuses this file too ('Unable to calculate checksum of ...')."
        f" Re-save the file as UTF-8, or declare its real encoding with a line"
        f" `encoding=<charset>` in {path}.conf",
        path=path,
        line=line_at(data, exc.start),
    )


def _is_utf8(encoding: str) -> bool:
    """Tell whether an encoding name means UTF-8."""
    return encoding.lower().replace("_", "-") in _UTF8_NAMES or (
        codecs.lookup(encoding).name == "utf-8"
    )


def _signed(crc: int) -> int:
    """Turn an unsigned CRC-32 into the signed int Java's `(int) crc32.getValue()` gives."""
    return crc - 0x1_0000_0000 if crc >= 0x8000_0000 else crc
