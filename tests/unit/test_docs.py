"""The docs stay true to the code: every setting documented, every link resolving."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from theo.settings import Settings

README = REPO_ROOT / "README.md"
DOCS = [
    README,
    REPO_ROOT / "CONTRIBUTING.md",
    REPO_ROOT / "CHANGELOG.md",
    *sorted((REPO_ROOT / "docs").glob("*.md")),
]
# Read by the CLI, not by the server's settings.
CLI_ONLY = {"THEO_SERVER_URL"}
DEPRECATED = {"THEO_MAX_QUEUE_PER_MODEL"}
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def configuration_table() -> str:
    text = README.read_text(encoding="utf-8")
    return text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_documents_every_setting() -> None:
    table = configuration_table()
    documented = set(re.findall(r"^\| `(THEO_\w+)` \|", table, re.MULTILINE))
    settings = {f"THEO_{name.upper()}" for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from the README's Configuration"
    assert documented - settings - CLI_ONLY == set(), "the README documents unknown settings"
    for old in DEPRECATED:
        assert old in table


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_links_resolve(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    links = [t for t in _LINK.findall(text) if "://" not in t]
    assert [t for t in links if not (doc.parent / t).exists()] == [], "links to missing files"
