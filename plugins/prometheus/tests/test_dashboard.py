"""The dashboard's numbers and its 80x24 frame, from a Turbo in process."""

import io

import dspy
import pytest
from rich.console import Console

from dspy_turbo_prometheus.dashboard import Dashboard, InProcess, Snapshot, quantile, rates, sparkline


def test_quantile_is_prometheus_histogram_quantile_over_the_increase():
    before = {0.1: 10, 0.5: 10, 1.0: 10, float("inf"): 10}
    now = {0.1: 10, 0.5: 60, 1.0: 110, float("inf"): 110}  # 100 new, half in (0.1, 0.5], half in (0.5, 1]
    assert quantile(0.5, now, before) == pytest.approx(0.5)
    assert quantile(0.25, now, before) == pytest.approx(0.3)
    assert quantile(0.95, now, before) == pytest.approx(0.95)
    assert quantile(0.5, before, before) is None, "no new observations: no latency"


def test_rates_over_an_interval():
    before = Snapshot(10.0, hits={"memory": 10}, misses=10, lm_calls=10)
    now = Snapshot(12.0, hits={"memory": 40, "redis": 10}, misses=20, errors=3, lm_calls=20)
    r = rates(now, before)
    assert r.requests_per_s == 25 and r.lm_per_s == 5
    assert r.hit_rate == pytest.approx(0.8) and r.tier_rates == {"memory": 0.6, "redis": pytest.approx(0.2)}
    assert r.error_rate == pytest.approx(0.06)


def test_sparkline_scales_to_the_max_and_bins_to_width():
    assert sparkline([0, 1, 2, 4], 4) == "▁▃▅█"
    assert sparkline([None, 1.0], 4) == " █"
    assert sparkline([0.5, 1.0], 4, top=1.0) == "▅█", "rates scale to 100 %, not to their max"
    assert len(sparkline(list(range(300)), 40)) <= 40


def test_in_process_frame_fits_80x24_and_shows_the_traffic(turbo):
    predict = dspy.Predict("question -> answer")
    board = Dashboard(InProcess(turbo), interval=0.1)
    board.step()
    for i in range(10):
        predict(question=f"q{i % 5}")
    frame = board.render(board.step())
    out = io.StringIO()
    Console(file=out, width=80, height=24, color_system=None).print(frame)
    lines = out.getvalue().splitlines()
    assert len(lines) <= 24 and max(len(line) for line in lines) <= 80
    text = out.getvalue()
    assert "hit rate" in text and "50.0 %" in text, text  # 5 hits of 10 lookups
    assert "hits 5  misses 5" in text and "total 5  errors 0" in text, text


def test_the_old_import_path_works_for_a_release_with_a_deprecation_warning():
    import dspy_turbo.dashboard as old
    import dspy_turbo_prometheus.dashboard as new

    with pytest.warns(DeprecationWarning, match=r"dspy_turbo\.dashboard moved to dspy_turbo_prometheus\.dashboard"):
        assert old.Dashboard is new.Dashboard
    with pytest.warns(DeprecationWarning):
        from dspy_turbo.dashboard import run
    assert run is new.run
