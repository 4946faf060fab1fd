"""The one place Theo relies on BentoML internals; tests/unit/test_bentoml_internals.py guards each.

BentoML's public API (``bentoml.service``, ``bentoml.api``, ``bentoml.depends``,
``bentoml.on_startup``, ``bentoml.get_current_service``) covers almost everything Theo
does. What it does not cover is below, each with why Theo needs it. An upgrade of BentoML
that changes one of these assumptions fails a unit test instead of a deployment.
"""

from __future__ import annotations

import aiohttp
from bentoml._internal.container.generate import BENTO_PATH, BENTO_UID_GID
from bentoml._internal.marshal.dispatcher import CorkDispatcher, Optimizer

# -- The adaptive batcher ---------------------------------------------------------------

# BentoML's default: the batcher polls its queue every 1 ms while a batch runs.
DEFAULT_BATCHER_TICK_SECONDS = 0.001


def tune_batcher(tick_seconds: float) -> None:
    """Set how often the adaptive batcher polls while a batch runs (process-wide).

    The batcher polls on the runner's event loop: at 1 ms it took a few % of a core per
    lane from the engine, and a batch takes 0.1-10 s here, so a slower tick costs no
    latency (docs/performance.md). BentoML has no setting for it: it is a class attribute.
    Call it once when a runner starts, before its first batch.
    """
    CorkDispatcher.TICKET_INTERVAL = tick_seconds


def batcher_tick_seconds() -> float:
    """The batcher's polling interval in force now."""
    return float(CorkDispatcher.TICKET_INTERVAL)


def batcher_training_rounds() -> tuple[int, ...]:
    """The batches BentoML's batcher trains itself on before it batches adaptively.

    ``CorkDispatcher.controller`` first dispatches ``N_SKIPPED_SAMPLE + 6`` single jobs, then
    one more single job, then one batch it holds open for a second job and one for a third
    (each wait up to ~1 s). Theo's warm-up sends exactly these at start-up so the first
    users don't pay for them. The unit test reads ``controller``'s source to check it.
    """
    singles = Optimizer.N_SKIPPED_SAMPLE + 6 + 1
    return (1,) * singles + (2, 3)


# -- Calls from the API service to a runner ----------------------------------------------

# A service's client of its dependencies (``_bentoml_impl.client.RemoteProxy``, proxy2.py)
# talks to them over aiohttp and lets its connection errors through: a dead runner's
# socket, or a connection dropped under calls in flight.
RUNNER_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientConnectionError,)

# -- The image `bentoml containerize` builds (for the Kubernetes manifests) ---------------

BENTO_SOURCE_DIR = f"{BENTO_PATH}/src"  # where the image holds the project's code
BENTO_USER_ID = BENTO_UID_GID  # the image's non-root `bentoml` user and group
# `bentoml start-http-server` (hidden, but what BentoCloud runs) serves one service of a
# bento; ``--depends NAME=URL`` points it at another service's address.
START_SERVICE_COMMAND = "start-http-server"
