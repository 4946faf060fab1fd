"""Shared test helpers: where the fixtures and the installed models are."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
MODELS_DIR = REPO_ROOT / "models"


def normalize_text(text: str) -> list[str]:
    """Lower-case, strip punctuation, split into words (for word-error comparisons)."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance between two texts after :func:`normalize_text`."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


@pytest.fixture(scope="session")
def fixture_manifest() -> dict[str, dict[str, Any]]:
    """``tests/fixtures/manifest.jsonl`` keyed by path."""
    lines = (FIXTURES / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return {item["path"]: item for item in map(json.loads, lines)}
