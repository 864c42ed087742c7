"""Fixtures for tests that run DSPy programs in separate processes (file and redis tiers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

# A worker script: loads a Turbo from a JSON config, asks questions with a real DSPy
# program on the offline LM, prints one JSON line (LM calls made by the engine, answers,
# stats). Optional: wait for a start file (to start several workers at once), threads.
WORKER = textwrap.dedent('''
    import json, os, sys, threading, time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy
    import dspy_turbo
    from dspy_turbo.offline import offline_lm

    spec = json.loads(sys.argv[1])
    turbo = dspy_turbo.load(spec["config"]).install()
    lm = offline_lm("openai/gpt-4o-mini", latency=spec.get("latency", 0.0), jitter=0)
    program = dspy.Predict("question -> answer")
    start = spec.get("start_file")
    if start:
        while not os.path.exists(start):
            time.sleep(0.005)
    questions = spec["questions"]
    answers = [None] * len(questions)
    dspy.configure(lm=lm)  # global, so the worker threads see it too

    def ask(i):
        answers[i] = program(question=questions[i]).answer
    threads = spec.get("threads", 1)
    if threads == 1:
        for i in range(len(questions)):
            ask(i)
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(ask, range(len(questions))))
    print(json.dumps({"lm_calls": lm.engine.calls, "answers": answers, "stats": turbo.stats()}))
    turbo.close()
''')


def start_worker(config: dict, questions: list[str], **spec) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps({"config": config, "questions": questions, **spec})],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def result(proc: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"worker failed:\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def run_worker(config: dict, questions: list[str], **spec) -> dict:
    return result(start_worker(config, questions, **spec))


@pytest.fixture
def workers():
    """``workers.start(config, questions, threads=, latency=, start_file=)``, ``workers.result(proc)``
    and ``workers.run(...)``: DSPy programs in their own Python processes."""
    started: list[subprocess.Popen] = []

    def start(config, questions, **spec):
        proc = start_worker(config, questions, **spec)
        started.append(proc)
        return proc

    yield SimpleNamespace(start=start, result=result, run=lambda *a, **k: result(start(*a, **k)))
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
