"""Audio and scoring helpers shared by the benchmark's two halves."""

from __future__ import annotations

import json
import os
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jiwer
import psutil
from threadpoolctl import threadpool_limits

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = REPO_ROOT.parent / "shared" / "eval"


def normalize(text: str) -> str:
    """Lower-case, punctuation stripped, single spaces: the form WER is computed on."""
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate in percent, after :func:`normalize`."""
    refs = [normalize(r) or "<empty>" for r in references]
    hyps = [normalize(h) for h in hypotheses]
    return 100.0 * jiwer.wer(refs, hyps)


@dataclass(frozen=True)
class EvalItem:
    path: Path
    text: str
    duration: float


def eval_items(eval_dir: Path, language: str = "en", subset: str = "core") -> list[EvalItem]:
    """Items of one subset and language from the eval set's ``manifest.jsonl``."""
    items = []
    for line in (eval_dir / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        if item["subset"] == subset and item["language"] == language:
            items.append(EvalItem(eval_dir / item["path"], item["text"], item["duration_s"]))
    return items


def machine() -> str:
    """This machine, as every report's header names it."""
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.machine()}, {cpu_model()}, {os.cpu_count()} cores, {memory:.0f} GB, "
        f"Python {platform.python_version()}"
    )


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name: runs on two CPUs are not comparable (their int8 kernels give
    other words on the same audio, and other speeds), so every report names it."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or "unknown CPU"


def write_report(out: Path, text: str, report: dict[str, Any]) -> None:
    """Write a benchmark's Markdown to ``out``, its data beside it as JSON, and print it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    out.with_suffix(".json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(text)


def runner_blas() -> threadpool_limits:
    """numpy's BLAS as Theo's runner keeps it (``BLAS_THREADS``), for a ``with`` block.

    The log-mel features then match the server's to the last bit; with more threads they
    can differ there, and on some CPUs that changes some int8 decodes (docs/performance.md).
    A lazy ``transcribe`` must be consumed inside the block.
    """
    from theo.engine.engine import BLAS_THREADS  # loads CTranslate2: only when asked

    return threadpool_limits(limits=BLAS_THREADS, user_api="blas")
