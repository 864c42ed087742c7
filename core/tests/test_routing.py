"""Model routing: the complexity selector, turbo.router() with real DSPy programs, the hook."""

import asyncio
import json
from pathlib import Path

import dspy
import pytest
import yaml

import dspy_turbo
from dspy_turbo import cli
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.routing.model_selection import ComplexitySelector

PROMPTS = yaml.safe_load((Path(__file__).parent / "data" / "routing_prompts.yaml").read_text())
TIERS = [{"name": "small", "model": "openai/gpt-4o-mini"}, {"name": "large", "model": "openai/gpt-4o"}]


def routing(**extra):
    return {"cache": {"tiers": [{"type": "memory"}]}, "routing": {"type": "complexity", "tiers": TIERS, **extra}}


def offline_factory(calls=None):
    made = {}

    def factory(model, **kwargs):
        made[model] = offline_lm(model, **kwargs)
        return made[model]

    factory.made = made
    return factory


def dspy_request(question, signature="question -> answer"):
    """The request DSPy's ChatAdapter sends for ``question`` (what the router sees)."""
    return {"messages": dspy.ChatAdapter().format(dspy.Signature(signature), demos=[], inputs={"question": question})}


def test_labelled_prompts_agree_with_the_selector_at_least_90_percent():
    selector = ComplexitySelector(ComplexitySelector.Options(tiers=TIERS))
    labelled = [(p, "small") for p in PROMPTS["easy"]] + [(p, "large") for p in PROMPTS["hard"]]
    assert len(labelled) >= 40
    wrong = [(p, want) for p, want in labelled if selector.select(dspy_request(p)).tier != want]
    agreement = 1 - len(wrong) / len(labelled)
    assert agreement >= 0.9, f"agreement {agreement:.0%}; misrouted: {wrong}"


def test_priority_shifts_decisions_toward_cheaper_or_stronger_tiers():
    def tiers_for(priority):
        selector = ComplexitySelector(ComplexitySelector.Options(tiers=TIERS, priority=priority))
        return [selector.select(dspy_request(p)).tier for p in PROMPTS["easy"] + PROMPTS["hard"]]

    speed, balanced, quality = (tiers_for(p).count("large") for p in ("speed", "balanced", "quality"))
    assert speed <= balanced <= quality

    def tier(priority, prompt):
        selector = ComplexitySelector(ComplexitySelector.Options(tiers=TIERS, priority=priority))
        return selector.select(dspy_request(prompt)).tier

    borderline_hard = "Compare the two proposals and recommend one."          # two reasoning markers
    borderline_easy = "Describe the history of tea in detail."               # only a hint
    assert [tier(p, borderline_hard) for p in ("speed", "balanced")] == ["small", "large"]
    assert [tier(p, borderline_easy) for p in ("balanced", "quality")] == ["small", "large"]


def test_router_routes_each_predictor_call_and_caches_per_model(make_turbo):
    turbo = make_turbo(routing()).install()
    factory = offline_factory()
    with dspy.context(lm=turbo.router(lm_factory=factory)):
        qa = dspy.Predict("question -> answer")
        qa(question="What is the capital of France?")
        qa(question="Prove by induction that the sum of the first n odd numbers equals n^2.")
        qa(question="What is the capital of France?")  # cached under the small model
    small, large = factory.made["openai/gpt-4o-mini"], factory.made["openai/gpt-4o"]
    assert small.engine.calls == 1 and large.engine.calls == 1
    stats = turbo.stats()
    assert stats["routing"]["decisions"] == {"small": 2, "large": 1}
    assert stats["by_model"]["openai/gpt-4o-mini"]["lm_calls"] == 1
    assert stats["hits_total"] == 1 and stats["lm_calls"] == 2


def test_the_chosen_model_is_part_of_the_cache_key(make_turbo):
    turbo = make_turbo(routing()).install()
    factory = offline_factory()
    with dspy.context(lm=turbo.router(lm_factory=factory)):
        qa = dspy.Predict("question -> answer")
        small = qa(question="What is 2+2?", config={"tier": "small"}).answer
        large = qa(question="What is 2+2?", config={"tier": "large"}).answer
    assert factory.made["openai/gpt-4o-mini"].engine.calls == 1
    assert factory.made["openai/gpt-4o"].engine.calls == 1, "a hit from the small model must not answer for the large one"
    assert turbo.stats()["routing"]["sources"] == {"hint": 2}
    assert small and large


def test_each_decision_is_an_event_with_model_tier_score_and_estimated_cost(make_turbo):
    seen = []
    turbo = make_turbo(routing()).install()
    turbo.bus.add("test", seen.append)
    with dspy.context(lm=turbo.router(lm_factory=offline_factory())):
        dspy.Predict("question -> answer")(question="Write a Python function implementing quicksort with unit tests")
    (route,) = [e for e in seen if e.kind == "route"]
    assert route.model == "openai/gpt-4o" and route.extra["tier"] == "large" and route.extra["source"] == "selector"
    assert 0.5 <= route.extra["score"] <= 1
    assert route.cost > 0
    assert "quicksort" not in json.dumps(route.extra), "events carry no request text"


def test_saved_by_routing_equals_the_top_tier_price_of_the_same_tokens(make_turbo):
    turbo = make_turbo(routing()).install()
    router = turbo.router(lm_factory=offline_factory())
    with dspy.context(lm=router):
        dspy.Predict("question -> answer")(question="Who painted the Mona Lisa?")
    usage = router.lm_for("openai/gpt-4o-mini").history[-1]["usage"]
    p, c = usage["prompt_tokens"], usage["completion_tokens"]
    spent = p * 0.15e-6 + c * 0.60e-6        # gpt-4o-mini, $ per token in DSPy's bundled table
    top = p * 2.50e-6 + c * 10.00e-6          # gpt-4o
    stats = turbo.stats()
    assert stats["dollars"]["spent"] == pytest.approx(spent, abs=1e-6)
    assert stats["dollars"]["saved_by_routing"] == pytest.approx(top - spent, abs=1e-6)
    assert stats["by_model"]["openai/gpt-4o-mini"]["dollars_saved_by_routing"] == pytest.approx(top - spent, abs=1e-6)


class FirstOpinion:
    @dspy_turbo.hookimpl
    def dspy_turbo_select_model(self, request, models):
        text = request["messages"][-1]["content"]
        return models[-1] if "VIP" in text else None


class SecondOpinion:
    @dspy_turbo.hookimpl
    def dspy_turbo_select_model(self, request, models):
        return models[0]


def test_hook_overrides_the_selector_first_non_none_wins(make_turbo):
    # pluggy calls the last registered first: SecondOpinion answers before FirstOpinion
    turbo = make_turbo(routing(), plugins=[FirstOpinion(), SecondOpinion()])
    router = turbo.router(lm_factory=offline_factory())
    hard = "Prove that the square root of 2 is irrational, step by step."
    assert router.decide(hard, emit=False).model == "openai/gpt-4o-mini"
    only_first = make_turbo(routing(), plugins=[FirstOpinion()]).router(lm_factory=offline_factory())
    assert only_first.decide("VIP: what time is it?").source == "hook"
    assert only_first.decide("VIP: what time is it?").model == "openai/gpt-4o"
    assert only_first.decide(hard).source == "selector", "None from every hook leaves it to the selector"


class Broken:
    @dspy_turbo.hookimpl
    def dspy_turbo_select_model(self):
        raise RuntimeError("policy service down")


def test_a_failing_hook_falls_back_to_the_selector_and_is_reported(make_turbo):
    turbo = make_turbo(routing(), plugins=[Broken()]).install()
    with dspy.context(lm=turbo.router(lm_factory=offline_factory())):
        out = dspy.Predict("question -> answer")(question="What is the capital of Peru?")
    assert out.answer
    stats = turbo.stats()
    assert stats["errors"] == {"hook": 1} and stats["routing"]["sources"] == {"selector": 1}


def test_async_calls_are_routed_too(make_turbo):
    turbo = make_turbo(routing()).install()
    factory = offline_factory()
    with dspy.context(lm=turbo.router(lm_factory=factory)):
        asyncio.run(dspy.Predict("question -> answer").acall(question="Derive the variance of a fair die roll, step by step."))
    assert factory.made["openai/gpt-4o"].engine.calls == 1


def test_unknown_tier_hint_is_a_clear_error(make_turbo):
    router = make_turbo(routing()).router(lm_factory=offline_factory())
    with pytest.raises(ValueError, match=r"unknown routing tier 'huge'.*tiers: small, large"):
        router("hello", tier="huge")


def test_router_without_routing_section_names_what_is_missing(make_turbo):
    with pytest.raises(dspy_turbo.ConfigError, match=r"routing: model routing needs a routing section"):
        make_turbo().router()


@pytest.mark.parametrize("section, path, message", [
    ({"type": "complexity", "tiers": []}, "routing.tiers", "at least 1 item"),
    ({"type": "complexity", "tiers": [*TIERS, TIERS[0]]}, "routing", "tier names must be unique; repeated: small"),
    ({"type": "complexity", "tiers": TIERS, "weights": {"lenght": 0.3}}, "routing", "unknown feature weight 'lenght'"),
    ({"type": "complexity", "tiers": TIERS, "priority": "fast"}, "routing.priority", "expected one of speed, balanced, quality"),
    ({"type": "complexty", "tiers": TIERS}, "routing.type", "did you mean 'complexity'"),
    ({"type": "complexity", "tiers": TIERS, "budget": {"limit": -1}}, "routing.budget.limit", "greater than 0"),
])
def test_routing_config_errors_name_their_yaml_path(section, path, message):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"routing": section})
    assert any(issue.path == path and message in issue.message for issue in info.value.issues), info.value.issues


def test_cli_route_explains_a_decision(tmp_path, capsys):
    config = tmp_path / "turbo.yaml"
    config.write_text(yaml.safe_dump({"routing": {"type": "complexity", "tiers": TIERS}}))
    assert cli.main(["route", "Implement Dijkstra's algorithm in Rust and analyze its complexity", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "tier: large" in out and "model: openai/gpt-4o" in out and "code=1" in out
    assert "-> large" in out and "est. $" in out
    assert cli.main(["route", "What is the capital of Chile?", "-c", str(config), "--json"]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["tier"] == "small" and explained["source"] == "selector"
    assert cli.main(["route", "hi", "-c", str(tmp_path / "missing.yaml")]) == 2


def test_concurrent_identical_routed_calls_make_one_lm_call(make_turbo, run_threads):
    import threading

    turbo = make_turbo(routing()).install()
    small = offline_lm("openai/gpt-4o-mini", latency=0.3)
    router = turbo.router(lms={"openai/gpt-4o-mini": small}, lm_factory=offline_factory())
    qa, answers, barrier = dspy.Predict("question -> answer"), [], threading.Barrier(8)

    def ask():
        with dspy.context(lm=router):
            barrier.wait()
            answers.append(qa(question="What is the capital of Norway?").answer)

    run_threads(ask, 8)
    assert small.engine.calls == 1 and len(set(answers)) == 1 and len(answers) == 8
    stats = turbo.stats()
    assert stats["coalesced"] == 7 and stats["dollars"]["saved_by_routing"] > 0
    assert stats["routing"]["decisions"] == {"small": 8}


def test_router_copies_keep_rollout_ids_apart_like_dspy(make_turbo):
    turbo = make_turbo(routing()).install()
    factory = offline_factory()
    router = turbo.router(lm_factory=factory)
    qa = dspy.Predict("question -> answer")
    for rollout in (1, 2, 1):
        with dspy.context(lm=router.copy(rollout_id=rollout, temperature=1.0)):
            qa(question="Name a colour.")
    assert factory.made["openai/gpt-4o-mini"].engine.calls == 2
