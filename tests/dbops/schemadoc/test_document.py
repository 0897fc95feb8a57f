"""document: the result behind `schemadoc`, read in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from dbops.schemadoc.document import document

pytestmark = pytest.mark.django_db


def test_it_renders_the_catalog_beside_the_file_and_writes_it(tmp_path: Path) -> None:
    output = tmp_path / "docs" / "schema.md"

    doc = document(connection, output)
    assert doc.current is None and not doc.up_to_date
    assert doc.tables > 0
    assert "households" in doc.text

    doc.write()
    again = document(connection, output)
    assert again.up_to_date
    assert again.current == output.read_text() == doc.text
