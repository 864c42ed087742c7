import pytest

from dspy_turbo.units import parse_duration, parse_size


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
