"""examples/semantic_rephrase.py runs as documented: rephrasings hit, changed facts do not."""

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "semantic_rephrase.py"


def test_semantic_example(minilm, capsys):
    spec = importlib.util.spec_from_file_location("semantic_rephrase", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from dspy_turbo.engines.offline import offline_lm

    stats = module.main(offline_lm("openai/gpt-4o-mini"))
    out = capsys.readouterr().out
    for line in out.splitlines()[: len(module.CONVERSATIONS)]:
        served, expected = line.split("ms", 1)[1].split("(expected")
        assert served.strip() == expected.split("(")[0].split(")")[0].strip(), line
    # at the calibrated default threshold a looser rephrasing is a miss, never a wrong answer
    assert stats["lm_calls"] == 7 and stats["semantic"]["hits"] == 3
