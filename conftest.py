import os
import tempfile

# Before anything imports dspy: DSPy builds its default disk cache at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("DSPY_CACHEDIR", tempfile.mkdtemp(prefix="dspy-cache-tests-"))

# The fixtures every test here uses, and a plugin's own test suite can use.
pytest_plugins = ["dspy_turbo.testing.fixtures"]


# `make test` runs each distribution's tests in a venv of its own (.ci/isolated) and, next to
# it, this suite with everything installed: there (DSPY_TURBO_TESTS=together) a distribution's
# own tests run only when they need another distribution (@pytest.mark.requires_plugin), so
# every test runs once, where what it needs is installed.
def _own_test(rel):
    parts = rel.parts
    return (parts[:2] == ("core", "tests") or (len(parts) > 2 and parts[0] == "plugins" and parts[2] == "tests")
            or parts[:3] in (("examples", "third_party_backend", "tests"), ("examples", "third_party_index", "tests")))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DSPY_TURBO_TESTS") != "together":
        return
    keep, drop = [], []
    for item in items:
        own = _own_test(item.path.relative_to(config.rootpath))
        (keep if not own or item.get_closest_marker("requires_plugin") else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
