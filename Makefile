# The README's two commands: `make demo` and `make test`. Each builds .venv when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

# Editable installs of every distribution in the repo, plus the dev tools.
PACKAGES := -e core -e examples/third_party_backend -e plugins/file -e plugins/redis
SOURCES := pyproject.toml core/pyproject.toml examples/third_party_backend/pyproject.toml \
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

$(STAMP): $(SOURCES)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	# torch first, as the local CPU build: anything later that needs torch (sentence-transformers) finds it
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet $(PACKAGES) --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dspy-turbo demo

# Every test, once each: every distribution's own tests in a venv with only it and the core
# (.ci/isolated: an undeclared dependency fails), and next to that, with everything installed,
# the tests that need several distributions, the examples and the docs (conftest.py says how).
test: $(STAMP)
	@$(MAKE) --no-print-directory -j2 test-together test-isolated

test-together: $(STAMP)
	DSPY_TURBO_TESTS=together DSPY_TURBO_REQUIRE_PLUGINS=1 $(BIN)/python -m pytest

# the whole suite in .venv (everything installed), as a developer runs it
test-all: $(STAMP)
	$(BIN)/python -m pytest

test-isolated:
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
	rm -rf $(VENV) .venv-iso
