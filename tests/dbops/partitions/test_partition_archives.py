"""Partition archives in storage: write-once objects, strict manifests (folder and moto S3)."""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.files.storage import FileSystemStorage
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from storages.backends.s3 import S3Storage

from dbops.partitions import ManifestError, PartitionError, manifest, store
from dbops.partitions.content import Content
from dbops.partitions.tables import parse_month

MONTH = date(2019, 1, 1)
CSV = b'id,note\n1,plain\n2,"multi\nline, ""quoted"""\n3,\n'
COLUMNS = ("id", "note")


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def put_part(storage: Any, data: bytes = CSV, rows: int = 3) -> manifest.Part:
    """Write a part as an archive run does, and return what its manifest entry says."""
    key = store.new_part_key("completions", MONTH, datetime.now(UTC))
    body = gzipped(data)
    store.write_once(storage, key, io.BytesIO(body), len(body), "application/gzip")
    return manifest.Part(
        key=key,
        rows=rows,
        bytes=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        exported_at=manifest.utc_now(),
        source="completions_y2019m01",
        columns=COLUMNS,
        content=Content(rows, 12345, -678),
    )


def archive_with_one_part(storage: Any) -> tuple[manifest.MonthArchive, manifest.Part]:
    part = put_part(storage)
    empty = manifest.read_month(storage, "completions", MONTH)
    manifest.write_manifest(storage, empty, [part])
    return manifest.read_month(storage, "completions", MONTH), part


def test_months_are_exactly_yyyy_mm() -> None:
    assert parse_month("2024-01") == date(2024, 1, 1)
    assert parse_month("1999-12") == date(1999, 12, 1)
    for text in ("2024-1", "2024-13", "2024-00", "24-01", "2024-01-01", " 2024-01", "2024-01\n"):
        with pytest.raises(ValueError, match="is not a month: use YYYY-MM"):
            parse_month(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_anything_but_yyyy_mm_is_not_a_month(text: str) -> None:
    valid = (
        len(text) == 7
        and text[4] == "-"
        and text[:4].isascii()
        and text[:4].isdigit()
        and text[5:].isascii()
        and text[5:].isdigit()
        and 1 <= int(text[5:]) <= 12
        and int(text[:4]) >= 1900
    )
    if valid:
        assert f"{parse_month(text):%Y-%m}" == text
    else:
        with pytest.raises(ValueError):
            parse_month(text)


def test_a_folder_archive_is_written_once_and_private(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path / "store")
    old_umask = os.umask(0)  # what a careless service manager might leave us
    try:
        archive, part = archive_with_one_part(storage)
    finally:
        os.umask(old_umask)
    path = Path(storage.path(part.key))
    original = path.read_bytes()

    with pytest.raises(store.ObjectExists):
        store.write_once(storage, part.key, io.BytesIO(b"other"), 5, "application/gzip")
    with pytest.raises(PartitionError, match="written by another run meanwhile"):
        manifest.write_manifest(storage, manifest.MonthArchive("completions", MONTH, "x"), [])
    assert path.read_bytes() == original
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest-000001.json", path.name]
    files = [p for p in Path(storage.location).rglob("*") if p.is_file()]
    folders = [p for p in Path(storage.location).rglob("*") if p.is_dir()]
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}
    assert {oct(p.stat().st_mode & 0o777) for p in [*folders, Path(storage.location)]} == {"0o700"}
    assert archive.parts == [part] and archive.version == 1
    store.verify_part(storage, part, "here")


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("s3", region_name="eu-west-1")
        client.create_bucket(
            Bucket="cg-archives", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        yield client


def s3_storage() -> S3Storage:
    return S3Storage(
        bucket_name="cg-archives",
        region_name="eu-west-1",
        location="backups",
        default_acl=None,
        file_overwrite=True,  # as configured: write-once must not depend on it
        object_parameters={"ServerSideEncryption": "AES256"},
    )


@pytest.mark.parametrize("multipart", [False, True])
def test_an_s3_archive_is_written_once_by_a_conditional_put(
    s3: Any, monkeypatch: pytest.MonkeyPatch, multipart: bool
) -> None:
    storage = s3_storage()
    data = os.urandom(11 * 1024 * 1024) if multipart else CSV
    if multipart:
        monkeypatch.setattr(store, "S3_SINGLE_PUT", 1024)
        monkeypatch.setattr(store, "S3_PART_SIZE", 5 * 1024 * 1024)
    key = "archives/completions/2019-01/part-20190201T000000Z-0000beef.csv.gz"
    store.write_once(storage, key, io.BytesIO(data), len(data), "application/gzip")
    with pytest.raises(store.ObjectExists):
        store.write_once(storage, key, io.BytesIO(b"x" * len(data)), len(data), "application/gzip")

    stored = s3.get_object(Bucket="cg-archives", Key=f"backups/{key}")
    assert stored["Body"].read() == data
    assert stored["ServerSideEncryption"] == "AES256"
    assert stored["ContentType"] == "application/gzip" and "ContentEncoding" not in stored
    assert s3.list_multipart_uploads(Bucket="cg-archives").get("Uploads", []) == []


def test_an_s3_archive_reads_back_and_refuses_a_missing_part(s3: Any) -> None:
    storage = s3_storage()
    archive, part = archive_with_one_part(storage)
    manifest.check_present(storage, archive)
    store.verify_part(storage, part, "s3")
    s3.delete_object(Bucket="cg-archives", Key=f"backups/{part.key}")
    with pytest.raises(ManifestError, match=rf"{part.name} is listed .* but missing"):
        manifest.check_present(storage, archive)


def test_a_part_that_is_not_the_listed_one_is_refused(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    _archive, part = archive_with_one_part(storage)
    for wrong in (
        replace(part, rows=4),
        replace(part, sha256="0" * 64),
        replace(part, columns=("id", "title")),
    ):
        with pytest.raises(ManifestError, match="the part is damaged or not the one"):
            store.verify_part(storage, wrong, "there")


def test_a_legacy_archive_is_the_months_first_part(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    body = gzipped(CSV)
    legacy = tmp_path / "archives/completions/completions_y2019m01.csv.gz"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(body)
    doc = {
        "table": "completions", "partition": "completions_y2019m01", "month": "2019-01",
        "rows": 3, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
        "object": "archives/completions/completions_y2019m01.csv.gz",
        "exported_at": "2024-03-01T03:00:00+00:00",
    }  # fmt: skip
    legacy.with_name("completions_y2019m01.manifest.json").write_text(json.dumps(doc))

    archive = manifest.read_month(storage, "completions", MONTH)
    assert (archive.version, [p.key for p in archive.parts]) == (0, [doc["object"]])
    store.verify_part(storage, archive.parts[0], "legacy")  # columns from its header
    added = put_part(storage)
    manifest.write_manifest(storage, archive, [*archive.parts, added])
    assert [p.rows for p in manifest.read_month(storage, "completions", MONTH).parts] == [3, 3]

    manifest.write_manifest(storage, manifest.read_month(storage, "completions", MONTH), [added])
    with pytest.raises(ManifestError, match=r"manifest-000002\.json leaves out completions_y2019"):
        manifest.read_month(storage, "completions", MONTH)


# --- tampered manifests are refused, never read as something else --------------------

NOT_A_COUNT = st.one_of(
    st.integers(max_value=-1), st.booleans(), st.floats(allow_nan=False), st.text(), st.none()
)
NOT_TEXT = st.one_of(st.integers(), st.booleans(), st.none(), st.lists(st.integers(), max_size=2))


def _unlike(pattern: str) -> st.SearchStrategy[Any]:
    import re

    return st.one_of(NOT_TEXT, st.text(max_size=70).filter(lambda t: not re.fullmatch(pattern, t)))


PART_DAMAGE = {
    "rows": NOT_A_COUNT,
    "bytes": NOT_A_COUNT,
    "sha256": _unlike(r"[0-9a-f]{64}"),
    "object": st.one_of(NOT_TEXT, st.text(max_size=90)),
    "source": _unlike(r"[a-z_][a-z0-9_]{0,62}"),
    "columns": st.one_of(NOT_TEXT, st.just([]), st.lists(st.just("id"), min_size=2, max_size=3)),
    "content": _unlike(r"-?\d{1,40}:-?\d{1,40}"),
    "exported_at": st.one_of(NOT_TEXT, st.just("2019-02-01T00:00:00"), st.text(max_size=5)),
    "restored_at": st.one_of(st.integers(), st.booleans(), st.just("yesterday")),
}
TOP_DAMAGE = {
    "format": st.one_of(st.integers(min_value=2), st.text(), st.none()),
    "table": st.one_of(NOT_TEXT, st.just("users")),
    "month": st.one_of(NOT_TEXT, st.just("2019-02"), st.just("2019-1")),
    "version": st.one_of(st.integers(min_value=2), st.integers(max_value=0), st.text()),
    "written_at": st.one_of(NOT_TEXT, st.just("soon")),
    "parts": st.one_of(st.integers(), st.text(), st.dictionaries(st.text(max_size=3), st.none())),
}


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, Any]:
    kind = draw(st.sampled_from(["part field", "top field", "drop", "extra", "truncate"]))
    if kind == "part field":
        name = draw(st.sampled_from(sorted(PART_DAMAGE)))
        return f"parts.0.{name}", draw(PART_DAMAGE[name])
    if kind == "top field":
        name = draw(st.sampled_from(sorted(TOP_DAMAGE)))
        return name, draw(TOP_DAMAGE[name])
    if kind == "drop":
        return "drop", draw(st.sampled_from([*sorted(manifest._MANIFEST_KEYS), "parts.0.rows"]))
    if kind == "extra":
        return "extra", draw(st.text(min_size=1, max_size=8))
    return "truncate", draw(st.floats(min_value=0, max_value=0.999))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(damage())
def test_a_tampered_manifest_is_refused_by_name(tmp_path: Path, change: tuple[str, Any]) -> None:
    root = tmp_path / "store"  # one archive for every example; each puts the manifest back
    storage = FileSystemStorage(location=root)
    if not root.exists():
        archive_with_one_part(storage)
    path = root / "archives/completions/2019-01/manifest-000001.json"
    doc = json.loads(path.read_text())
    what, value = change
    bad = copy.deepcopy(doc)
    if what == "truncate":
        text = json.dumps(doc)
        data = text[: int(len(text) * value)]
    else:
        if what.startswith("parts.0."):
            bad["parts"][0][what.removeprefix("parts.0.")] = value
        elif what == "drop" and value.startswith("parts.0."):
            del bad["parts"][0][value.removeprefix("parts.0.")]
        elif what == "drop":
            del bad[value]
        elif what == "extra":
            bad[value if value not in bad else value + "_"] = 1
        else:
            bad[what] = value
        data = json.dumps(bad)
    path.write_text(data)
    try:
        with pytest.raises(ManifestError, match=r"manifest-000001\.json .*refused"):
            manifest.read_month(storage, "completions", MONTH)
    finally:
        path.write_text(json.dumps(doc))
