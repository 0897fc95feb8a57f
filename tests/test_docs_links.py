"""Every link and file name in README.md and docs/*.md leads to a file of the repository.

A clone has only what is committed: a link to a file outside the repository, or to one
that was renamed, is a dead end for the reader. Markdown links resolve from the page's
folder (as GitHub does); Markdown files named in the text (`docs/backups.md`) resolve from
the page's folder or the repository root. Anchors must match a heading of the target page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.M)
MD_NAME = re.compile(r"(?<![\w/.:-])((?:\.\.?/)*[\w.-]+(?:/[\w.-]+)*\.md)(?:#[\w-]+)?\b")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m[1]) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", text, re.M)}


def inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO) and path.exists()


def link_problems(page: Path) -> list[str]:
    text = page.read_text()
    problems = []
    for target in [*LINK.findall(text), *REFERENCE.findall(text)]:
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        name, _, anchor = target.partition("#")
        file = (page.parent / name) if name else page
        if not inside_repo(file):
            problems.append(f"{page.name}: link to {target}: no such file in the repository")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            problems.append(f"{page.name}: link to {target}: {file.name} has no such heading")
    for name in MD_NAME.findall(FENCE.sub("", text)):
        if not (inside_repo(page.parent / name) or inside_repo(REPO / name)):
            problems.append(f"{page.name}: names {name}, which is not in the repository")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_link_and_file_name_leads_to_a_file_of_the_repository(page: Path) -> None:
    assert link_problems(page) == []


def test_a_link_outside_the_repository_or_to_a_missing_heading_is_reported(
    tmp_path: Path,
) -> None:
    page = REPO / "docs" / "architecture.md"
    assert "layout" in anchors(page)
    stray = tmp_path / "README.md"
    stray.write_text(
        "Architecture: `../shared/DESIGN.md`. See [ops](docs/operations.md#no-such-part).\n"
    )
    problems = link_problems(stray)
    assert any("../shared/DESIGN.md" in p for p in problems), problems
    assert any("docs/operations.md#no-such-part" in p for p in problems), problems


def test_the_readme_says_how_to_change_the_port_the_makefile_serves_on() -> None:
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^PORT \?= 8000$", makefile, re.M)
    assert "runserver $(HOST):$(PORT)" in makefile
    assert "make run PORT=8001" in (REPO / "README.md").read_text()
