"""The Prometheus sink, scraped over HTTP while a real DSPy program runs: the counters match
turbo.stats(), the exposition passes promtool, several workers add up (multiprocess mode)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import dspy
import pytest
from prometheus_client.parser import text_string_to_metric_families

import dspy_turbo
from dspy_turbo.cli.demo import QAPipeline, build_questions
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.events.bus import Event


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(found, metric, **labels):
    return found.get((metric, frozenset(labels.items())), 0.0)


def total(found, metric, **labels):
    """Sum over every series of ``metric`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == metric and want <= set(ls))


def promtool_check(promtool: str, text: str) -> None:
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result.stdout + result.stderr


def assert_matches_stats(found, stats):
    for tier, hits in stats["hits"].items():
        assert value(found, "dspy_turbo_cache_lookups_total", tier=tier, result="hit") == hits
    assert value(found, "dspy_turbo_cache_lookups_total", tier="none", result="miss") == stats["misses"]
    assert total(found, "dspy_turbo_lm_calls_total", result="ok") == stats["lm_calls"]
    assert total(found, "dspy_turbo_lm_calls_total", result="error") == stats["lm_errors"]
    assert total(found, "dspy_turbo_coalesced_calls_total") == stats["coalesced"]
    assert total(found, "dspy_turbo_tokens_total", kind="spent") == stats["tokens"]["spent"]
    assert total(found, "dspy_turbo_tokens_total", kind="saved") == stats["tokens"]["saved"]
    assert total(found, "dspy_turbo_cost_dollars_total", kind="spent") == pytest.approx(stats["dollars"]["spent"], abs=1e-6)
    assert total(found, "dspy_turbo_cost_dollars_total", kind="saved") == pytest.approx(stats["dollars"]["saved"], abs=1e-6)
    assert total(found, "dspy_turbo_cache_stores_total") == sum(stats["stores"].values())
    assert total(found, "gen_ai_client_operation_duration_seconds_count") == stats["lm_calls"] + stats["lm_errors"]
    assert total(found, "dspy_turbo_events_dropped_total") == stats["dropped_events"]


@pytest.mark.timeout(120)
def test_scraped_counters_match_stats_while_a_dspy_program_runs(make_turbo, promtool):
    turbo = make_turbo({"namespace": "prom-http", "cache": {"tiers": [{"type": "memory"}]},
                        "metrics": {"sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": 0}]}}).install()
    url = turbo.sinks[0].url
    examples = [dspy.Example(question=q).with_inputs("question") for q in build_questions(40)]
    program = QAPipeline()
    lm = offline_lm("openai/gpt-4o-mini", latency=0.02)
    done = threading.Event()

    def run():
        with dspy.context(lm=lm):
            program.batch(examples, num_threads=4, disable_progress_bar=True)
            program.batch(examples[:10], num_threads=4, disable_progress_bar=True)  # warm: hits
        done.set()

    worker = threading.Thread(target=run)
    worker.start()
    during = []
    while not done.wait(0.2):
        during.append(value(samples(scrape(url)), "dspy_turbo_cache_lookups_total", tier="none", result="miss"))
    worker.join()
    assert len(during) >= 2 and during == sorted(during), "served while the program ran, counters only grow"
    assert turbo.flush_events(5)
    text = scrape(url)
    found = samples(text)
    stats = turbo.stats()
    assert stats["lm_calls"] == lm.engine.calls > 0 and stats["hits_total"] >= 20
    assert_matches_stats(found, stats)
    input_sum = value(found, "gen_ai_client_token_usage_sum", gen_ai_operation_name="chat", gen_ai_provider_name="openai",
                      gen_ai_request_model="openai/gpt-4o-mini", gen_ai_token_type="input")
    output_sum = value(found, "gen_ai_client_token_usage_sum", gen_ai_operation_name="chat", gen_ai_provider_name="openai",
                       gen_ai_request_model="openai/gpt-4o-mini", gen_ai_token_type="output")
    assert input_sum > 0 and output_sum > 0 and input_sum + output_sum == stats["tokens"]["spent"]
    assert value(found, "dspy_turbo_cache_tier_entries", tier="memory") == stats["tiers"]["memory"]["entries"]
    assert value(found, "dspy_turbo_process_memory_bytes") > 10_000_000
    promtool_check(promtool, text)
    assert "What is" not in text and "prom-http:v1" not in text, "no request text, no keys"


def test_every_event_kind_passes_promtool_and_alerts_set_a_gauge(make_turbo, lm, promtool):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory", "max_entries": 2}]},
                        "metrics": {"sinks": [{"type": "prometheus", "port": None}],
                                    "alerts": [{"name": "low-hit-rate", "metric": "hit_rate", "below": 0.7, "min_events": 3}]}}).install()
    for i in range(4):
        lm(f"question {i}")  # misses; the 2-entry tier evicts
    with turbo.timed("retrieve"):
        pass
    bus = turbo.bus
    bus.emit(Event("hit", tier="semantic", latency=0.003, model="openai/gpt-4o-mini", tokens=10, cost=0.001,
                   extra={"similarity": 0.97}))
    bus.emit(Event("semantic_reject", extra={"similarity": 0.978, "guard": "numbers"}))
    bus.emit(Event("error", tier="memory", reason="get", error="TimeoutError: slow"))
    bus.emit(Event("breaker", tier="memory", reason="open"))
    bus.emit(Event("batch", extra={"items": 10, "hits": 4, "misses": 6, "errors": 0}))
    bus.emit(Event("lm_call", model="openai/gpt-4o-mini", latency=0.5, error="RateLimitError: slow down"))
    bus.emit(Event("route", model="openai/gpt-4o-mini", cost=0.0001, extra={"tier": "small", "score": 0.2, "source": "selector"}))
    bus.emit(Event("route_saving", model="openai/gpt-4o-mini", cost=0.002, extra={"baseline_model": "openai/gpt-4o"}))
    assert turbo.flush_events(5)
    text = turbo.sinks[0].text()
    promtool_check(promtool, text)
    found = samples(text)
    assert value(found, "dspy_turbo_alert_active", alert="low-hit-rate") == 1
    assert value(found, "dspy_turbo_semantic_similarity_count", result="hit") == 1
    assert value(found, "dspy_turbo_semantic_similarity_count", result="rejected") == 1
    assert value(found, "dspy_turbo_cache_evictions_total", tier="memory") == 2
    assert value(found, "dspy_turbo_errors_total", component="memory", operation="get") == 1
    assert value(found, "dspy_turbo_batch_items_total", result="items") == 10
    assert value(found, "dspy_turbo_other_events_total", kind="semantic_reject") == 1
    assert value(found, "dspy_turbo_route_decisions_total", tier="small", model="openai/gpt-4o-mini", source="selector") == 1
    assert value(found, "dspy_turbo_cost_dollars_total", model="openai/gpt-4o-mini", kind="saved_by_routing") == 0.002
    assert turbo.stats()["dollars"]["saved_by_routing"] == pytest.approx(0.002)
    assert value(found, "dspy_turbo_timed_duration_seconds_count", name="retrieve") == 1
    assert value(found, "dspy_turbo_lm_calls_total", model="openai/gpt-4o-mini", result="error") == 1
    assert total(found, "gen_ai_client_operation_duration_seconds_count", error_type="RateLimitError") == 1
    for i in range(30):
        lm(f"question {i % 2}")  # now mostly hits: the alert resolves
    assert turbo.flush_events(5)
    assert value(samples(turbo.sinks[0].text()), "dspy_turbo_alert_active", alert="low-hit-rate") == 0


def test_a_port_in_use_is_a_clear_start_up_error(make_turbo):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = {"metrics": {"sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": 0},
                                        {"type": "prometheus", "host": "127.0.0.1", "port": port}]}}
        with pytest.raises(OSError, match=rf"127.0.0.1:{port}: port {port} is already in use"):
            make_turbo(config)
    deadline = time.monotonic() + 2
    while any(t.name == "dspy-turbo-sink:metrics.sinks[0]:prometheus" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the sink built before the failure is stopped"
        time.sleep(0.05)


def test_bad_options_name_their_path(make_turbo):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        make_turbo({"metrics": {"sinks": [{"type": "prometheus", "port": 70000, "registry": "nope"}]}})
    text = str(info.value)
    assert "metrics.sinks[0].port" in text and "metrics.sinks[0].registry" in text


def test_joins_an_existing_registry(make_turbo, lm):
    import prometheus_client

    from dspy_turbo_prometheus import sink as sink_module

    config = {"metrics": {"sinks": [{"type": "prometheus", "registry": "default", "port": None}]}}
    try:
        one, two = make_turbo(config).install(), make_turbo(config)
        lm("shared registry")
        lm("shared registry")
        assert one.flush_events(5) and two.flush_events(5)
        assert one.sinks[0].metrics is two.sinks[0].metrics, "two Turbos share the families"
        got = prometheus_client.REGISTRY.get_sample_value("dspy_turbo_cache_lookups_total", {"tier": "memory", "result": "hit"})
        assert got == 1
    finally:
        metrics = sink_module._SHARED.pop(prometheus_client.REGISTRY, None)
        for family in vars(metrics or object()).values():
            prometheus_client.REGISTRY.unregister(family)


WORKER = r"""
import json, sys, dspy, dspy_turbo
from dspy_turbo.engines.offline import offline_lm
questions = sys.argv[1].split("|")
turbo = dspy_turbo.load({"namespace": "prom-mp", "cache": {"tiers": [{"type": "memory"}]},
                         "metrics": {"sinks": [{"type": "prometheus", "port": None}]}}).install()
predict = dspy.Predict("question -> answer")
with dspy.context(lm=offline_lm("openai/gpt-4o-mini")):
    for q in questions:
        predict(question=q)
turbo.flush_events(5)
print(json.dumps(turbo.stats()))
turbo.close()
"""


@pytest.mark.timeout(120)
def test_several_worker_processes_add_up(tmp_path, promtool):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    jobs = [["a", "b", "a", "c"], ["a", "d", "d", "d", "e"]]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, "|".join(qs)], env=env, stdout=subprocess.PIPE, text=True)
             for qs in jobs]
    stats = [json.loads(p.communicate(timeout=100)[0].strip().splitlines()[-1]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    # one process serves the sum, as next to a gunicorn master
    exporter = subprocess.Popen([sys.executable, "-m", "dspy_turbo_prometheus", "--host", "127.0.0.1", "--port", "0"],
                                env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = exporter.stdout.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        text = scrape(line.split()[1])
    finally:
        exporter.terminate()
        exporter.wait(10)
    found = samples(text)
    assert value(found, "dspy_turbo_cache_lookups_total", tier="memory", result="hit") == sum(s["hits_total"] for s in stats) == 3
    assert total(found, "dspy_turbo_lm_calls_total", result="ok") == sum(s["lm_calls"] for s in stats) == 6
    assert total(found, "dspy_turbo_tokens_total", kind="spent") == sum(s["tokens"]["spent"] for s in stats)
    promtool_check(promtool, text)


def test_dropped_events_of_a_stuck_sink_show_as_a_counter(make_turbo):
    release = threading.Event()

    class Stuck(dspy_turbo.Component):
        name, kind = "stuck", "metric_sink"

        def __call__(self, event):
            release.wait(30)

    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_sinks(self):
            return [Stuck]

    turbo = make_turbo({"metrics": {"sinks": [{"type": "stuck"}, {"type": "prometheus", "port": None}], "queue_size": 10}},
                       plugins=[Plugin()])
    try:
        for _ in range(100):
            turbo.bus.emit(Event("custom"))
            time.sleep(0.005)  # the working sink drains every 50 ms: it keeps up with this
    finally:
        release.set()
    assert turbo.flush_events(5)
    dropped = turbo.stats()["dropped_events_by_sink"]["metrics.sinks[0]:stuck"]
    assert dropped >= 89
    found = samples(turbo.sinks[1].text())
    assert value(found, "dspy_turbo_events_dropped_total", sink="metrics.sinks[0]:stuck") == dropped
    assert value(found, "dspy_turbo_events_dropped_total", sink="metrics.sinks[1]:prometheus") == 0


def test_top_once_against_the_endpoint(make_turbo, lm, capsys):
    from dspy_turbo.cli import main as cli

    turbo = make_turbo({"metrics": {"sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": 0}]}}).install()
    for i in range(6):
        lm(f"question {i % 3}")
    assert turbo.flush_events(5)
    assert cli(["top", "--url", turbo.sinks[0].url, "--once", "--interval", "0.1"]) == 0
    frame = capsys.readouterr().out
    assert "hits 3  misses 3" in frame and "total 3  errors 0" in frame, frame
    assert cli(["top", "--url", "http://127.0.0.1:9/metrics", "--once", "--interval", "0.1"]) == 1
    assert "cannot reach http://127.0.0.1:9/metrics" in capsys.readouterr().out
    assert cli(["top", "--url", "localhost:9464"]) == 2
    assert "--url must be an http(s) URL" in capsys.readouterr().err


def test_metrics_are_served_on_loopback_unless_configured(make_turbo, lm):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]},
                        "metrics": {"sinks": [{"type": "prometheus", "port": 0}]}}).install()
    (sink,) = turbo.sinks
    assert sink._server.server_address[0] == "127.0.0.1"
    dspy.Predict("question -> answer")(question="scraped from this machine")
    turbo.flush_events()
    import urllib.request

    with urllib.request.urlopen(sink.url, timeout=5) as response:
        assert b"dspy_turbo_lm_calls_total" in response.read()


class TwoStep(dspy.Module):
    """Two LM requests per item, so item-level and LM-level counts differ."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict: bool")

    def forward(self, question):
        answer = self.draft(question=question).answer
        return dspy.Prediction(answer=answer, verdict=self.check(question=question, answer=answer).verdict)


@pytest.mark.requires_plugin("batching")
@pytest.mark.timeout(120)
def test_batch_item_hits_and_stores_have_their_own_counters_matching_stats(make_turbo, promtool):
    turbo = make_turbo({"namespace": "prom-items", "cache": {"tiers": [{"type": "memory"}]},
                        "metrics": {"sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": 0}]}})
    url = turbo.sinks[0].url
    examples = [{"question": f"q{i}"} for i in range(10)]
    with dspy.context(lm=offline_lm("openai/gpt-4o-mini", latency=0.002), adapter=None):
        turbo.batch(TwoStep(), examples, strategy="thread", item_cache=True)
        turbo.batch(TwoStep(), examples, strategy="thread", item_cache=True)  # every item whole from the cache
    assert turbo.flush_events(5)
    text = scrape(url)
    found = samples(text)
    stats = turbo.stats()
    assert stats["batch_items"] == {"hits": {"memory": 10}, "hits_total": 10, "stores": {"memory": 10}}
    assert value(found, "dspy_turbo_batch_item_hits_total", tier="memory") == 10
    assert value(found, "dspy_turbo_batch_item_stores_total", tier="memory") == 10
    # the lookups counter still counts both levels, as stats() does; LM-level = lookups - item hits
    assert_matches_stats(found, stats)
    assert value(found, "dspy_turbo_cache_lookups_total", tier="memory", result="hit") == stats["hits"]["memory"] == 10
    promtool_check(promtool, text)
