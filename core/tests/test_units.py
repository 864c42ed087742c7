import pytest

from dspy_turbo.host.units import parse_duration, parse_size, parse_ttl


@pytest.mark.parametrize("text,seconds", [(90, 90), ("90s", 90), ("250ms", 0.25), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1.5", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text,size", [(1024, 1024), ("512KB", 512 * 1024), ("256MB", 256 * 1024**2), ("1.5GiB", int(1.5 * 1024**3)), ("10 gb", 10 * 1024**3)])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["-1s", "7 parsecs", "abc", True, [1]])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["-5MB", "12 furlongs", "", None])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize("bad,words", [
    (float("inf"), "at most 100 years"), (float("-inf"), "cannot be negative"), (float("nan"), "not NaN"),
    (2**63, "at most 100 years"), ("5300w", "at most 100 years"), (1e300, "at most 100 years"),
    ("9" * 80, "is not a duration"),
])
def test_durations_are_finite_and_bounded(bad, words):
    with pytest.raises(ValueError, match=words):
        parse_duration(bad)


@pytest.mark.parametrize("bad,words", [
    (float("inf"), "at most 9223372036854775807 bytes"), (float("nan"), "not NaN"), (2**63, "at most"),
    ("100000000000000000000000 TB", "at most"), ("8388608 TB", "at most"),
])
def test_sizes_fit_in_63_bits(bad, words):
    with pytest.raises(ValueError, match=words):
        parse_size(bad)


def test_the_bounds_themselves_are_accepted_exactly():
    assert parse_size(2**63 - 1) == 2**63 - 1
    assert parse_size("8388607 TB") == 8388607 * 1024**4
    assert parse_duration("5200w") == 5200 * 7 * 86400


@pytest.mark.parametrize("zero", [0, "0", "0s", "0ms", 0.0])
def test_a_ttl_is_more_than_zero(zero):
    with pytest.raises(ValueError, match="more than 0.*null.*remove the tier"):
        parse_ttl(zero)
    assert parse_duration(zero) == 0  # a plain duration may be 0 (a cool-down, a wait)


def test_a_ttl_takes_durations():
    assert parse_ttl("7d") == 7 * 86400 and parse_ttl(0.5) == 0.5
