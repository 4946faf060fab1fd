"""Schemathesis against the served OpenAPI document of the audio routes: never a 5xx.

Bounded (a few dozen derandomized examples per route and mode) to stay within a couple of
minutes in CI; set ``FUZZ_EXAMPLES`` for a longer run.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.conftest import FIXTURES
from tests.integration.conftest import BASE, TINY, RunningServer

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
ROUTES = ("/v1/audio/transcriptions", "/v1/audio/translations")
CLIP = FIXTURES / "LJ001-0008.mp3"
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def audio_operation(server: RunningServer, path: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    return schema[path]["POST"]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("path", ROUTES)
def test_any_form_gets_an_answer_below_500(
    server: RunningServer, path: str, mode: GenerationMode
) -> None:
    """Whatever the fields hold (or lack), the answer is a 2xx/4xx, never a 5xx."""
    statuses: list[int] = []

    @given(case=audio_operation(server, path).as_strategy(mode))
    @BOUNDED
    def check(case: Any) -> None:
        response = case.call(base_url=server.base_url, timeout=120)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    check()
    print(f"\n{path} {mode}: {Counter(statuses)}")


@pytest.mark.parametrize(("path", "model"), [(ROUTES[0], TINY), (ROUTES[1], BASE)])
def test_real_audio_with_fuzzed_options_gets_an_answer_below_500(
    server: RunningServer, path: str, model: str
) -> None:
    """A real model and real audio reach the engine; every other field is fuzzed."""
    audio = CLIP.read_bytes()
    statuses: list[int] = []

    @given(case=audio_operation(server, path).as_strategy(GenerationMode.POSITIVE))
    @settings(BOUNDED, max_examples=max(EXAMPLES // 2, 1))
    def check(case: Any) -> None:
        case.body = {**case.body, "model": model, "file": audio}
        response = case.call(base_url=server.base_url, timeout=120)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error])

    check()
    print(f"\n{path} {model}: {Counter(statuses)}")
    assert 200 in statuses  # the fuzzed requests did reach the engine
