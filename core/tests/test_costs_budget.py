"""Cost accounting against hand-computed prices, YAML price overrides, and the routing budget."""

import logging

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.routing.budget import Budget, BudgetExceeded

TIERS = [{"name": "small", "model": "openai/gpt-4o-mini"}, {"name": "large", "model": "openai/gpt-4o"}]


def usage_of(lm):
    usage = lm.history[-1]["usage"]
    return usage["prompt_tokens"], usage["completion_tokens"]


def test_spent_and_saved_equal_hand_computed_costs_for_known_prices(make_turbo):
    turbo = make_turbo().install()
    lm = offline_lm("openai/gpt-4o")
    with dspy.context(lm=lm):
        qa = dspy.Predict("question -> answer")
        qa(question="How tall is Mont Blanc?")
        p, c = usage_of(lm)
        qa(question="How tall is Mont Blanc?")  # a hit: saves what the call cost
    cost = p * 2.50 / 1e6 + c * 10.00 / 1e6  # gpt-4o: $2.50 / $10.00 per million tokens
    stats = turbo.stats()
    assert stats["dollars"]["spent"] == pytest.approx(cost, abs=1e-6)
    assert stats["dollars"]["saved"] == pytest.approx(cost, abs=1e-6)
    model = stats["by_model"]["openai/gpt-4o"]
    assert model["dollars"] == pytest.approx(cost, abs=1e-6)
    assert model["dollars_saved_by_cache"] == pytest.approx(cost, abs=1e-6)


def test_yaml_prices_price_private_models_and_override_the_table(make_turbo):
    turbo = make_turbo({"costs": {"prices": {
        "acme/private-7b": {"input_per_million": 0.2, "output_per_million": 0.6},
        "openai/gpt-4o-mini": {"input_per_million": 1.0, "output_per_million": 2.0},  # negotiated rate
    }}}).install()
    private, mini = offline_lm("acme/private-7b"), offline_lm("openai/gpt-4o-mini")
    with dspy.context(lm=private):
        dspy.Predict("question -> answer")(question="q1")
    p1, c1 = usage_of(private)
    with dspy.context(lm=mini):
        dspy.Predict("question -> answer")(question="q2")
    p2, c2 = usage_of(mini)
    by_model = turbo.stats()["by_model"]
    assert by_model["acme/private-7b"]["dollars"] == pytest.approx((p1 * 0.2 + c1 * 0.6) / 1e6, abs=1e-9)
    assert by_model["openai/gpt-4o-mini"]["dollars"] == pytest.approx((p2 * 1.0 + c2 * 2.0) / 1e6, abs=1e-9)


def test_an_unknown_model_is_a_warning_never_a_crash(make_turbo, caplog):
    caplog.set_level(logging.WARNING, logger="dspy_turbo")
    turbo = make_turbo({"routing": {"type": "complexity", "tiers": [*TIERS, {"name": "own", "model": "acme/unpriced-1"}]}})
    (warning,) = turbo.config.warnings
    assert warning.path == "routing.tiers[2].model" and "no price known for model 'acme/unpriced-1'" in warning.message
    assert "costs.prices" in warning.message
    assert "routing.tiers[2].model: no price known" in caplog.text
    turbo.install()
    lm = offline_lm("acme/unpriced-1")
    with dspy.context(lm=lm):
        assert dspy.Predict("question -> answer")(question="still answered?").answer
    stats = turbo.stats()
    assert stats["lm_calls"] == 1 and stats["dollars"]["spent"] == 0
    assert "no price known for model 'acme/unpriced-1'" in caplog.text


def test_bad_price_entries_name_their_path():
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"costs": {"prices": {"acme/x": {"input_per_million": -1, "ouput_per_million": 2}}}})
    paths = {issue.path for issue in info.value.issues}
    assert {"costs.prices.acme/x.input_per_million", "costs.prices.acme/x.ouput_per_million"} <= paths


# -- budget ----------------------------------------------------------------------------------------


def routed(make_turbo, on_exceeded, limit):
    turbo = make_turbo({"routing": {"type": "complexity", "tiers": TIERS,
                                    "budget": {"limit": limit, "period": "1d", "on_exceeded": on_exceeded}}}).install()
    made = {}

    def factory(model, **kw):
        made[model] = offline_lm(model, **kw)
        return made[model]

    return turbo, turbo.router(lm_factory=factory), made


HARD = "Prove by induction that the sum of the first n odd numbers equals n^2, step by step."


def test_budget_reached_routes_to_the_cheapest_tier(make_turbo):
    turbo, router, made = routed(make_turbo, "cheapest", limit=1e-6)
    with dspy.context(lm=router):
        qa = dspy.Predict("question -> answer")
        qa(question=HARD)                       # large tier; its cost passes the tiny limit
        qa(question=HARD + " Then generalise.")  # same difficulty, but the budget is spent
    assert made["openai/gpt-4o"].engine.calls == 1
    assert made["openai/gpt-4o-mini"].engine.calls == 1
    stats = turbo.stats()
    assert stats["routing"]["sources"] == {"selector": 1, "budget": 1}
    assert stats["routing"]["budget"]["exceeded"] is True
    # every routed call counts, the one past the limit too
    assert stats["routing"]["budget"]["spent"] == pytest.approx(stats["dollars"]["spent"], abs=1e-6)


def test_budget_reached_with_error_fails_clearly_but_still_serves_cached_answers(make_turbo):
    turbo, router, made = routed(make_turbo, "error", limit=1e-6)
    with dspy.context(lm=router):
        qa = dspy.Predict("question -> answer")
        first = qa(question="What is the capital of Spain?")
        with pytest.raises(BudgetExceeded, match=r"routing budget reached: \$0\.\d+ spent of \$0\.000001 per 1d period; "
                                                 r"it resets at .*on_exceeded: cheapest"):
            qa(question="What is the capital of Italy?")
        again = qa(question="What is the capital of Spain?")  # in the cache: costs nothing
    assert again.answer == first.answer
    assert made["openai/gpt-4o-mini"].engine.calls == 1


def test_budget_message_shows_small_limits_and_periods_as_written():
    budget = Budget(limit=0.001, period=3600, on_exceeded="error", clock=lambda: 86400 * 10 + 100.0)
    budget.add(0.0012)
    message = str(budget.error())
    assert "$0.0012 spent of $0.001 per 1h period" in message


def test_budget_resets_with_the_next_period():
    now = [86400 * 10 + 100.0]
    budget = Budget(limit=1.0, period=3600, clock=lambda: now[0])
    budget.add(0.6)
    budget.add(0.5)
    assert budget.exceeded() and budget.spent == pytest.approx(1.1)
    now[0] += 3600  # the next hour
    assert not budget.exceeded() and budget.spent == 0
    assert budget.status()["resets_at"].endswith("+00:00")


def test_cli_check_prints_price_warnings_and_still_passes(tmp_path, capsys):
    import yaml

    from dspy_turbo import cli

    config = tmp_path / "turbo.yaml"
    config.write_text(yaml.safe_dump({"routing": {"type": "complexity", "tiers": [
        {"name": "small", "model": "acme/unpriced-2"}, {"name": "large", "model": "openai/gpt-4o"}]}}))
    assert cli.main(["check", str(config)]) == 0
    out = capsys.readouterr()
    assert "OK:" in out.out
    assert "warning: routing.tiers[0].model: no price known for model 'acme/unpriced-2'" in out.err
