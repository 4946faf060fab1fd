"""theo/serving/bentoml_internals.py: each BentoML internal Theo relies on still holds.

These fail on a BentoML upgrade that moves or changes one of them, before a deployment does.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

import aiohttp
from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer
from bentoml_cli._internal.start import build_start_command

from theo.serving import bentoml_internals
from theo.serving.bentoml_internals import (
    DEFAULT_BATCHER_TICK_SECONDS,
    RUNNER_CONNECTION_ERRORS,
    START_SERVICE_COMMAND,
    batcher_tick_seconds,
    batcher_training_rounds,
    tune_batcher,
)
from theo.serving.router import WARM_UP_ROUNDS


def _training_calls() -> list[tuple[int, int, int]]:
    """The (required, to_train, batch_size) arguments of each train_optimizer call."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(CorkDispatcher.controller)))
    names = {"self.optimizer.N_SKIPPED_SAMPLE": Optimizer.N_SKIPPED_SAMPLE}
    calls = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "self.train_optimizer":
            args = [ast.unparse(arg) for arg in node.args]
            for name, value in names.items():
                args = [arg.replace(name, str(value)) for arg in args]
            required, to_train, size = (int(eval(arg, {})) for arg in args)  # plain arithmetic
            calls.append((required, to_train, size))
    return calls


def test_the_warm_up_sends_exactly_the_batcher_training_schedule() -> None:
    calls = _training_calls()
    assert calls, "CorkDispatcher.controller no longer trains through train_optimizer"
    expected = tuple(size for _, to_train, size in calls for _ in range(to_train))
    assert batcher_training_rounds() == expected
    assert expected == WARM_UP_ROUNDS


def test_the_batcher_tick_is_the_attribute_its_loops_sleep_on() -> None:
    assert CorkDispatcher.TICKET_INTERVAL == DEFAULT_BATCHER_TICK_SECONDS
    source = inspect.getsource(CorkDispatcher)
    assert "asyncio.sleep(self.TICKET_INTERVAL)" in source
    try:
        tune_batcher(0.005)
        assert batcher_tick_seconds() == 0.005
        assert CorkDispatcher.TICKET_INTERVAL == 0.005
    finally:
        tune_batcher(DEFAULT_BATCHER_TICK_SECONDS)


def test_the_dependency_client_raises_aiohttp_connection_errors() -> None:
    from _bentoml_impl import client
    from _bentoml_impl.client import proxy2

    # service.py's runners are bentoml.depends(...): RemoteProxy, from proxy2, on aiohttp.
    assert client.RemoteProxy is proxy2.RemoteProxy
    assert "aiohttp.ClientSession(" in inspect.getsource(proxy2)
    assert issubclass(aiohttp.ServerDisconnectedError, RUNNER_CONNECTION_ERRORS)
    # Its timeouts are TimeoutErrors, which the router answers 503 before this tuple.
    assert issubclass(aiohttp.ServerTimeoutError, TimeoutError)


def test_the_image_layout_is_what_the_kubernetes_manifests_assume() -> None:
    assert bentoml_internals.BENTO_USER_ID == 1034
    assert bentoml_internals.BENTO_SOURCE_DIR == "/home/bentoml/bento/src"


def test_start_http_server_serves_one_service_with_its_dependencies() -> None:
    command = build_start_command().commands[START_SERVICE_COMMAND]
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert {"--service-name", "--depends", "--host", "--port"} <= options
