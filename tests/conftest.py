"""Shared test helpers: where the fixtures and the installed models are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jiwer
import pytest

from bench.common import normalize

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
MODELS_DIR = REPO_ROOT / "models"


def normalize_text(text: str) -> list[str]:
    """Lower-case, strip punctuation, split into words (for word-error comparisons)."""
    return normalize(text).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Word-level edit distance (substitutions + deletions + insertions) after normalizing."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return len(hyp.split())
    out = jiwer.process_words(ref, hyp)
    return int(out.substitutions + out.deletions + out.insertions)


@pytest.fixture(scope="session")
def fixture_manifest() -> dict[str, dict[str, Any]]:
    """``tests/fixtures/manifest.jsonl`` keyed by path."""
    lines = (FIXTURES / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return {item["path"]: item for item in map(json.loads, lines)}
