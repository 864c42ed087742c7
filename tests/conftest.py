import os
import tempfile

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# DSPy builds its default disk cache on first use of dspy.cache; keep it out of $HOME.
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-cache-tests-"))

import dspy  # noqa: E402
import pytest  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.offline import offline_lm  # noqa: E402


@pytest.fixture
def lm():
    """An offline LM with no latency; ``lm.engine.calls`` counts real LM calls."""
    model = offline_lm("openai/gpt-4o-mini")
    with dspy.context(lm=model, adapter=None):
        yield model


@pytest.fixture
def make_turbo():
    """Build (and always close) Turbos from config dicts."""
    made = []

    def make(config=None, **kwargs):
        turbo = dspy_turbo.load(config if config is not None else {"cache": {"tiers": [{"type": "memory"}]}}, **kwargs)
        made.append(turbo)
        return turbo

    yield make
    for turbo in made:
        turbo.close()


@pytest.fixture
def turbo(make_turbo, lm):
    """A memory-only Turbo installed as dspy.cache for the test."""
    return make_turbo().install()


@pytest.fixture
def run_threads():
    """Run ``target`` in ``n`` threads at once and wait for all of them."""
    import threading

    def run(target, n):
        threads = [threading.Thread(target=target) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return run
