# The README's two commands: `make demo` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

# Editable installs of every distribution in the repo, plus the dev tools.
PACKAGES := -e core -e examples/third_party_backend -e examples/third_party_index -e plugins/file -e plugins/redis
SOURCES := pyproject.toml core/pyproject.toml examples/third_party_backend/pyproject.toml examples/third_party_index/pyproject.toml \
	plugins/file/pyproject.toml plugins/redis/pyproject.toml
# metric sinks (prometheus, logsink)
PACKAGES += -e plugins/prometheus -e plugins/logsink
SOURCES += plugins/prometheus/pyproject.toml plugins/logsink/pyproject.toml
# tracing: OpenTelemetry spans (with the OTLP/HTTP exporter extra)
PACKAGES += -e 'plugins/otel[otlp]'
SOURCES += plugins/otel/pyproject.toml
# batch strategies (thread, async)
PACKAGES += -e plugins/batching
SOURCES += plugins/batching/pyproject.toml
# the ray batch strategy (ray pinned: a 79 MB wheel for CPython 3.11, ~1 min to install)
PACKAGES += -e plugins/ray ray==2.60.0
SOURCES += plugins/ray/pyproject.toml
# semantic cache (faiss)
PACKAGES += -e 'plugins/faiss[verifier]'
SOURCES += plugins/faiss/pyproject.toml
# the documentation site (tests/docs runs mkdocs build --strict)
PACKAGES += -r docs/requirements.txt
SOURCES += docs/requirements.txt

.PHONY: demo test test-together test-all test-isolated bench bench-semantic lint clean

# uv installs (.ci/installer puts it in .venv-uv, and torch's local CPU build in .venv-uv/torch.txt,
# the constraint every install takes: uv does not read pip's config, which points at that file)
UV_HOME := .venv-uv
UV := $(UV_HOME)/bin/uv
TORCH := $(UV_HOME)/torch.txt
export UV_SYSTEM_CERTS := 1
export UV_PYTHON_DOWNLOADS := never

$(UV_HOME)/.installed: .ci/installer
	@bash .ci/installer

$(STAMP): $(SOURCES) $(UV_HOME)/.installed
	test -x $(BIN)/python || $(UV) venv --quiet --seed --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --python $(BIN)/python -c $(TORCH) $(PACKAGES) --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dspy-turbo demo

# Every test, once each: every distribution's own tests in a venv with only it and the core
# (.ci/isolated: an undeclared dependency fails), and next to that, with everything installed,
# the tests that need several distributions, the examples and the docs (conftest.py says how).
# The two run side by side from the start: .ci/isolated builds its own venvs while .venv builds.
test: $(UV_HOME)/.installed
	@$(MAKE) --no-print-directory -j2 test-together test-isolated

test-together: $(STAMP)
	DSPY_TURBO_TESTS=together DSPY_TURBO_REQUIRE_PLUGINS=1 $(BIN)/python -m pytest

# the whole suite in .venv (everything installed), as a developer runs it
test-all: $(STAMP)
	$(BIN)/python -m pytest

test-isolated: $(UV_HOME)/.installed
	@bash .ci/isolated

bench: $(STAMP)
	$(BIN)/python bench/bench_core.py
	$(BIN)/python bench/bench_storage.py
	$(BIN)/python bench/bench_routing.py

bench-semantic: $(STAMP)
	$(BIN)/python bench/semantic_eval.py --speed

.PHONY: docs docs-serve
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

lint: $(STAMP)
	$(BIN)/ruff check core plugins examples tests bench

clean:
	rm -rf $(VENV) .venv-iso $(UV_HOME)
