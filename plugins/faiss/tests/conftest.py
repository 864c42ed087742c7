import uuid

import pytest

# No HF_HUB_OFFLINE here: the embedder itself loads with local_files_only, so a test that
# reached a model hub would fail on this machine (no network) instead of being hidden.


@pytest.fixture(scope="session")
def minilm():
    """Load all-MiniLM-L6-v2 once for the session; every Turbo built afterwards shares it."""
    from dspy_turbo_faiss.embedder import DEFAULT_MODEL, load_model

    return load_model(DEFAULT_MODEL, "cpu")


@pytest.fixture
def semantic_config():
    """A memory tier plus the semantic cache, in a namespace of its own; extra keys go under cache.semantic."""

    def make(threshold=0.9, tiers=None, **semantic):
        return {"namespace": f"sem-{uuid.uuid4().hex[:12]}", "cache": {
            "tiers": tiers or [{"type": "memory"}],
            "semantic": {"index": {"type": "faiss"}, "embedder": {"type": "sentence-transformers", "quantize": False},
                         "threshold": threshold, **semantic}}}

    return make


@pytest.fixture
def semantic_turbo(make_turbo, semantic_config, minilm, lm):
    """An installed Turbo with the semantic cache; ``lm`` is the offline LM it fronts."""
    return make_turbo(semantic_config()).install()


@pytest.fixture
def events():
    """Collect every event of a Turbo: ``events.attach(turbo)``, then ``events.of(kind)``."""

    class Events(list):
        def attach(self, turbo):
            turbo.bus.add(f"test-{uuid.uuid4().hex}", self.append)
            return turbo

        def of(self, kind, tier=None):
            return [e for e in self if e.kind == kind and (tier is None or e.tier == tier)]

    return Events()
