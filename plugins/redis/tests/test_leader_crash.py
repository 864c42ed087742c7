"""Single-flight across processes when a leader dies mid-call, or outlives its lease: one LM
call per question, never one per waiting process (a private Redis, a real HTTP LM server,
DSPy programs in their own processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import dspy_turbo

# Loads a Turbo, prints "ready", waits for its start file, asks every question on its own
# thread through dspy.LM against the HTTP server, prints the answers.
WORKER = textwrap.dedent('''
    import json, os, sys, threading, time
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import dspy
    import dspy_turbo

    spec = json.loads(sys.argv[1])
    turbo = dspy_turbo.load(spec["config"]).install()
    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=spec["api_base"], api_key="sk-test-not-a-secret",
                              num_retries=0), adapter=dspy.ChatAdapter())
    program = dspy.Predict("question -> answer")
    print("ready", flush=True)
    while not os.path.exists(spec["start_file"]):
        time.sleep(0.005)
    answers = [None] * len(spec["questions"])

    def ask(i):
        answers[i] = program(question=spec["questions"][i]).answer
    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(answers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"answers": answers, "coalesced": turbo.stats()["coalesced"]}), flush=True)
    turbo.close()
''')


def _start(spec: dict) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    return proc


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"worker did not start: {line!r} {proc.stderr.read()[-2000:] if not line else ''}"


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_leader_killed_mid_call_costs_one_more_call_per_question(redis_server, openai_server, namespace, tmp_path):
    """lease == wait (the defaults' ratio, scaled to 3 s): the waiters reach their deadline as the
    dead leader's lease runs out. One of them takes the lease over; the others wait for it."""
    server = redis_server()
    config = {"namespace": namespace, "cache": {"singleflight": {"lease": "3s", "wait": "3s"},
                                                "tiers": [{"type": "memory"}, {"type": "redis", "url": server.url}]}}
    questions = [f"What is the tallest building in city {i}?" for i in range(8)]
    hung_until = 0.0
    lead_file, wait_file = tmp_path / "lead", tmp_path / "wait"
    spec = {"config": config, "api_base": openai_server.url, "questions": questions}
    leader = _start({**spec, "start_file": str(lead_file)})
    waiters = [_start({**spec, "start_file": str(wait_file)}) for _ in range(3)]
    try:
        for proc in (leader, *waiters):
            _wait_ready(proc)
        openai_server.latency = 6  # the leader's calls outlive it
        lead_file.touch()
        hung_until = time.monotonic() + 6.5
        _wait_for(lambda: openai_server.calls == 8, 30, "the leader's 8 calls")
        wait_file.touch()  # every question's lease is the leader's: the waiters wait
        time.sleep(0.5)
        openai_server.latency = 1.0  # the calls after the crash take a second
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(10)
        results = []
        for proc in waiters:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in (leader, *waiters):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    time.sleep(max(0.0, hung_until - time.monotonic()))  # the dead leader's requests end before the server does
    assert openai_server.calls == 8 + 8, "one call per question after the crash, not one per waiter"
    assert all(r["answers"] == results[0]["answers"] for r in results) and all(results[0]["answers"])
    assert sum(r["coalesced"] for r in results) == 2 * 8  # two of the three waiters were served by the third


def test_a_leader_slower_than_its_lease_keeps_it(redis_server, namespace):
    """The lease is renewed while the call runs: a call four times longer than the lease is
    still the only one (without renewal a waiter takes the expired lease and calls again)."""
    server = redis_server()
    config = {"namespace": namespace, "cache": {"singleflight": {"lease": "600ms", "wait": "30s"},
                                                "tiers": [{"type": "redis", "url": server.url}]}}
    a, b = dspy_turbo.load(config), dspy_turbo.load(config)  # two processes' Turbos: one Redis, no shared memory
    calls = []

    def slow_report(year):
        calls.append(year)
        time.sleep(2.4)
        return {"year": year, "total": 42}

    results = {}
    try:
        fa, fb = a.cached(slow_report), b.cached(slow_report)
        first = threading.Thread(target=lambda: results.__setitem__("a", fa(2024)))
        first.start()
        time.sleep(0.2)  # a holds the lease
        results["b"] = fb(2024)
        first.join()
    finally:
        a.close()
        b.close()
    assert calls == [2024]
    assert results == {"a": {"year": 2024, "total": 42}, "b": {"year": 2024, "total": 42}}
