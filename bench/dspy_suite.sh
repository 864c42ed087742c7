#!/usr/bin/env bash
# DSPy's own tests for caching, LMs, streaming, parallelism, usage tracking, callbacks and
# embeddings, run twice: plain, and with a Turbo installed per test (bench/dspy_peer.py).
# Prints per file passed/failed/skipped side by side and the tests that reached the Turbo;
# exits 1 when a test that passes plain fails with a Turbo (and is not a known exception).
#
#   bench/dspy_suite.sh PATH            # PATH: a DSPy checkout (work tree or bare git dir)
#   DSPY_CHECKOUT=PATH bench/dspy_suite.sh
#
# Get a checkout with `git clone https://github.com/stanfordnlp/dspy` (or any mirror of it).
# The tests are copied out of it to $DSPY_SUITE_DIR (default
# ${XDG_CACHE_HOME:-~/.cache}/dspy-turbo/dspy-suite), never into this repository. From a git
# checkout the tests of the tag matching the installed DSPy are taken when it has that tag,
# else those of the newest tag not newer than it, else HEAD (the script says which).
# Needs the project's .venv (make test builds it); PYTHON overrides the interpreter.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
src=${1:-${DSPY_CHECKOUT:-}}
if [ -z "$src" ] || [ ! -e "$src" ]; then
    echo "usage: bench/dspy_suite.sh PATH_TO_DSPY_CHECKOUT (or DSPY_CHECKOUT=...)" >&2
    echo "  get one with: git clone https://github.com/stanfordnlp/dspy /tmp/dspy" >&2
    exit 2
fi
python=${PYTHON:-$repo/.venv/bin/python}
work=${DSPY_SUITE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dspy-turbo/dspy-suite}
case "$(cd "$(dirname "$work")" 2>/dev/null && pwd)/" in
    "$repo"/*) echo "DSPY_SUITE_DIR must be outside the repository" >&2; exit 2 ;;
esac
installed=$("$python" -c "import importlib.metadata as m; print(m.version('dspy'))")

# Which tests: the checkout's own, at the installed version's tag when it has one.
rm -rf "$work/src" && mkdir -p "$work/src"
if git_dir=$(git -C "$src" rev-parse --absolute-git-dir 2>/dev/null); then
    ref=$(git --git-dir="$git_dir" tag --list | "$python" -c '
import re, sys
want = tuple(int(x) for x in re.findall(r"\d+", sys.argv[1])[:3])
tags = [(tuple(int(x) for x in re.findall(r"\d+", t)[:3]), t) for t in sys.stdin.read().split()
        if re.fullmatch(r"v?\d+\.\d+\.\d+", t)]
older = sorted(v for v in tags if v[0] <= want)
print(older[-1][1] if older else "HEAD")' "$installed")
    echo "DSPy installed: $installed; tests from $src at $ref ($(git --git-dir="$git_dir" rev-parse --short "$ref"))"
    [ "$ref" = "$installed" ] || echo "  (no tag $installed in the checkout: the tests of $ref, adapted as bench/README.md says)"
    git --git-dir="$git_dir" archive --prefix=tests/ "$ref:tests" | tar -x -C "$work/src"
else
    echo "DSPy installed: $installed; tests from the directory $src"
    cp -r "$src/tests" "$work/src/tests"
fi

files=(
    tests/clients/test_cache.py tests/clients/test_disk_serialization.py   # caching
    tests/clients/test_lm.py tests/clients/test_inspect_global_history.py  # LMs
    tests/streaming/test_streaming.py                                     # streaming
    tests/utils/test_parallelizer.py tests/predict/test_parallel.py        # parallelism
    tests/utils/test_usage_tracker.py                                     # usage tracking
    tests/callback/test_callback.py                                       # callbacks
    tests/clients/test_embedding.py                                       # embeddings
)
present=()
for f in "${files[@]}"; do [ -f "$work/src/$f" ] && present+=("$f"); done

# DSPy's litellm_test_server fixture starts LiteLLM's proxy; without its extras, a stand-in.
mkdir -p "$work/bin"
bin_path=$(dirname "$python")
if ! "$python" -c "import litellm.proxy.proxy_server" 2>/dev/null; then
    printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$python" "$here/dspy_suite_proxy.py" > "$work/bin/litellm"
    chmod +x "$work/bin/litellm"
    bin_path="$work/bin:$bin_path"
    echo "LiteLLM's proxy is not installed: DSPy's test server is bench/dspy_suite_proxy.py"
fi

run() {  # run MODE: one pass over the files, its report in $work/MODE.jsonl
    echo "running DSPy's tests: $1 ..."
    (cd "$work/src" && env PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" LITELLM_LOCAL_MODEL_COST_MAP=True \
        DSPY_CACHEDIR="$work/dspy-cache-$1" DSPY_TURBO_CACHE_DIR="$work/turbo-cache-$1" PATH="$bin_path:$PATH" \
        "$python" -m pytest -q -p dspy_peer -p no:cacheprovider --peer-mode="$1" --peer-report="$work/$1.jsonl" \
        -o addopts= --continue-on-collection-errors "${present[@]}" > "$work/$1.log" 2>&1) || true
    tail -n 1 "$work/$1.log"
}
run plain
run turbo
echo
PYTHONPATH="$here" "$python" "$here/dspy_peer.py" "$work/plain.jsonl" "$work/turbo.jsonl"
