"""The import contracts of pyproject.toml ([tool.importlinter]) hold, and they catch what they forbid.

Plugins import only ``dspy_turbo``, ``dspy_turbo.plugin...`` and ``dspy_turbo.testing``; the
SDK imports no host part or feature; ``integration.call_dispatch`` does not import ``integration.dspy_cache``; the
layers of the core hold (the tiers, events, coordination, engines); the core imports no plugin.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

# The contracts name every distribution of the repository: they are checked where all are installed.
pytestmark = pytest.mark.requires_plugin("file", "redis", "prometheus", "logsink", "otel", "batching", "faiss", "ray",
                                        "sqlite_example", "numpy_index")

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
SDK_CONTRACT = "plugins-use-the-sdk"


def _config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]


def _lint(config_path: Path | None = None, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing: install the dev group (import-linter)")
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    args = [str(LINT_IMPORTS), "--no-cache"] + (["--config", str(config_path)] if config_path else [])
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _write_toml(config: dict, path: Path) -> None:
    # JSON strings, lists and booleans are valid TOML values: enough for these tables.
    top = [f"{k} = {json.dumps(v)}" for k, v in config.items() if k != "contracts"]
    out = ["[tool.importlinter]", *top]
    for contract in config["contracts"]:
        out += ["", "[[tool.importlinter.contracts]]", *(f"{k} = {json.dumps(v)}" for k, v in contract.items())]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def test_the_import_contracts_hold():
    done = _lint()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{len(_config()['contracts'])} kept, 0 broken" in done.stdout


def test_every_plugin_in_the_repository_is_under_the_sdk_contract():
    packages = {p.name for pattern in ("plugins/*/src/*", "examples/third_party_backend/src/*",
                                             "examples/third_party_index/src/*")
                for p in REPO.glob(pattern) if p.is_dir() and (p / "__init__.py").exists()}
    config = _config()
    contract = next(c for c in config["contracts"] if c["id"] == SDK_CONTRACT)
    assert packages == set(contract["source_modules"])
    assert packages <= set(config["root_packages"])
    allowed = {f"{p}.** -> dspy_turbo.{t}" for p in packages for t in ("plugin", "plugin.**", "testing", "testing.**")}
    assert set(contract["ignore_imports"]) == allowed  # no exception: every plugin uses the SDK only


@pytest.mark.parametrize("internal", ["dspy_turbo.cache.tiered", "dspy_turbo.semantic", "dspy_turbo.host.batching"])
def test_a_plugin_that_imports_a_core_internal_breaks_the_contract(tmp_path, internal):
    """A plugin package put under the same contract: its SDK imports pass, one import of an
    internal module (either import form) fails the check, naming the module and the line."""
    package = tmp_path / "dspy_turbo_lintprobe"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "plugin.py").write_text(
        "import dspy_turbo\nfrom dspy_turbo.plugin import hookimpl\nfrom dspy_turbo.plugin.backend import CacheBackend\n"
        "from dspy_turbo.testing import CacheBackendSuite\n", encoding="utf-8")
    config = _config()
    config["root_packages"] = [*config["root_packages"], package.name]
    contract = next(c for c in config["contracts"] if c["id"] == SDK_CONTRACT)
    contract["source_modules"] = [*contract["source_modules"], package.name]
    contract["ignore_imports"] = [*contract["ignore_imports"],
                                  *(f"{package.name}.** -> dspy_turbo.{t}" for t in ("plugin", "plugin.**", "testing", "testing.**"))]
    path = tmp_path / "contracts.toml"
    _write_toml(config, path)
    done = _lint(path, tmp_path)
    assert done.returncode == 0, "imports of the SDK and the suites are allowed:\n" + done.stdout[-3000:]

    parent, _, name = internal.rpartition(".")
    (package / "backend.py").write_text(f"from {parent} import {name}\n", encoding="utf-8")
    done = _lint(path, tmp_path)
    assert done.returncode != 0
    assert f"{package.name} is not allowed to import {internal}" in done.stdout, done.stdout[-3000:]
    assert f"{package.name}.backend -> {internal} (l.1)" in done.stdout
