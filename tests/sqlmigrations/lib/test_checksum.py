"""Checksums must equal what Flyway stored for the same bytes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sqlmigrations.lib.checksum import flyway_checksum, text_checksum
from sqlmigrations.lib.exceptions import InvalidEncoding

# A copy of ../shared/flyway-vectors, byte for byte, so a clone anywhere can run the tests.
VECTORS = Path(__file__).resolve().parent / "flyway_vectors"


def _file_vectors() -> list[tuple[str, int]]:
    """Read the file rows of expected.tsv (the inline rows are tested below by value)."""
    with (VECTORS / "expected.tsv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))[1:]
    return [(row[0], int(row[1])) for row in rows if row and not row[0].startswith("(inline)")]


def test_the_vector_table_lists_every_published_file() -> None:
    listed = {name for name, _ in _file_vectors()}
    on_disk = {p.name for p in VECTORS.glob("*.sql")}
    assert listed == on_disk
    assert len(listed) == 11


@pytest.mark.parametrize(("filename", "expected"), _file_vectors())
def test_it_reproduces_the_checksum_flyway_stored(filename: str, expected: int) -> None:
    data = (VECTORS / filename).read_bytes()
    assert flyway_checksum(data, path=filename) == expected


def test_it_reproduces_the_inline_vectors_from_expected_tsv() -> None:
    text = (VECTORS / "expected.tsv").read_text(encoding="utf-8")
    assert "-1039259818" in text
    assert "989464445" in text
    issue_2474 = b"alter table location_history add column valid_until timestamp with time zone;"
    assert flyway_checksum(issue_2474, path="inline") == -1039259818
    assert flyway_checksum(b"abc\ndef efg\nxyz", path="a") == 989464445
    assert flyway_checksum(b"abc\r\ndef efg\nxyz\r\n", path="b") == 989464445


def test_it_ignores_lf_crlf_and_lone_cr_line_endings() -> None:
    lf = flyway_checksum(b"select 1;\nselect 2;\n", path="lf")
    assert flyway_checksum(b"select 1;\r\nselect 2;\r\n", path="crlf") == lf
    assert flyway_checksum(b"select 1;\rselect 2;\r", path="cr") == lf


def test_it_ignores_a_trailing_newline_and_blank_lines() -> None:
    without = flyway_checksum(b"select 1;", path="a")
    assert flyway_checksum(b"select 1;\n", path="b") == without
    assert flyway_checksum(b"select 1;\n\n\r\n", path="c") == without


def test_it_gives_zero_for_an_empty_file_or_only_newlines() -> None:
    assert flyway_checksum(b"", path="empty") == 0
    assert flyway_checksum(b"\n", path="newline") == 0


def test_it_strips_one_utf8_bom_at_the_start() -> None:
    plain = flyway_checksum(b"select 1;\n", path="a")
    assert flyway_checksum(b"\xef\xbb\xbfselect 1;\n", path="b") == plain
    assert flyway_checksum(b"\xef\xbb\xbf\xef\xbb\xbfselect 1;\n", path="c") != plain


def test_it_keeps_trailing_spaces_in_the_checksum() -> None:
    assert flyway_checksum(b"select 1; \n", path="a") != flyway_checksum(b"select 1;\n", path="b")


def test_it_matches_the_text_checksum_for_non_ascii_content() -> None:
    text = "\ufeffinsert into t values ('caf\u00e9 \U0001f600');\r\n"
    assert flyway_checksum(text.encode("utf-8"), path="a") == text_checksum(text)


def test_it_checksums_the_decoded_text_for_another_encoding() -> None:
    text = "select 'caf\u00e9';\n"
    latin1 = flyway_checksum(text.encode("latin-1"), path="a", encoding="ISO-8859-1")
    utf16 = flyway_checksum(text.encode("utf-16"), path="b", encoding="UTF-16")
    assert latin1 == utf16 == flyway_checksum(text.encode("utf-8"), path="c")


def test_it_rejects_invalid_utf8_naming_the_file_and_line() -> None:
    with pytest.raises(InvalidEncoding) as caught:
        flyway_checksum(b"select 1;\nselect '\xe9';\n", path="sub/V3__bad.sql")
    message = str(caught.value)
    assert message.startswith("sub/V3__bad.sql:2: not valid utf-8")
    assert "encoding=" in message
    assert caught.value.path == "sub/V3__bad.sql"
    assert caught.value.line == 2
