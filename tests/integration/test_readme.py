"""The README's examples, pasted as they are, against a real server.

Each fenced block after a ``<!-- tested by tests/integration/test_readme.py -->`` line runs
from a scratch folder holding the fixtures it names, with ``http://localhost:8000`` replaced
by the test server's address. A comment line in a bash block shows an output: its words must
be in what the block printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO_ROOT, normalize_text
from tests.integration.conftest import RunningServer

pytestmark = pytest.mark.integration

README = REPO_ROOT / "README.md"
MARKER = "<!-- tested by tests/integration/test_readme.py -->"
README_URL = "http://localhost:8000"
JFK_WORDS = normalize_text("ask not what your country can do for you")
# What base makes of fleurs-fr-000.ogg, in a word (the python block shows no output).
TRANSLATION_WORD = "accident"
_BLOCK = re.compile(re.escape(MARKER) + r"\n```(\w+)\n(.*?)\n```", re.DOTALL)


@dataclass(frozen=True)
class Example:
    language: str
    code: str
    line: int

    @property
    def id(self) -> str:
        return f"{self.language}-line{self.line}"


def readme_examples() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    return [
        Example(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 2)
        for m in _BLOCK.finditer(text)
    ]


EXAMPLES = readme_examples()


def test_the_readme_has_curl_sdk_and_cli_examples() -> None:
    assert [e.language for e in EXAMPLES] == ["bash", "python", "bash"]
    assert "curl " in EXAMPLES[0].code and "theo transcribe" in EXAMPLES[2].code


def contains_words(output: str, words: list[str]) -> bool:
    return " ".join(words) in " ".join(normalize_text(output))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.id)
def test_example_runs_as_pasted(example: Example, server: RunningServer, tmp_path: Path) -> None:
    code = example.code.replace(README_URL, server.base_url)
    assert server.base_url in code or "theo " in code, "the example talks to no server"
    for name in set(re.findall(r"tests/fixtures/([\w.-]+)", code)):
        (tmp_path / "tests" / "fixtures").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, tmp_path / "tests" / "fixtures" / name)
    venv_bin = str(Path(sys.executable).parent)  # `theo` and `python` of this venv
    env = {
        **os.environ,
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
        "THEO_SERVER_URL": server.base_url,
    }
    command = (
        ["bash", "-euo", "pipefail", "-c", code]
        if example.language == "bash"
        else [sys.executable, "-c", code]
    )
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    output = done.stdout
    assert done.returncode == 0, f"README line {example.line}:\n{output}\n{done.stderr}"
    assert '"error"' not in output, output
    assert contains_words(output, JFK_WORDS), output
    if "translat" in code:
        assert TRANSLATION_WORD in output.lower(), output
    if example.language == "bash":
        for shown in re.findall(r"^# (.+)$", example.code, re.MULTILINE):
            assert contains_words(output, normalize_text(shown)), f"README shows {shown!r}"
