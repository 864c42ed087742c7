"""A local Ray the strategy starts itself (no ``address``, no ``ray.init`` by the program)
outlives the batch that started it: the program runs batch after batch, in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

import dspy
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.requires_plugin("batching")]

SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import dspy, dspy_turbo

    dspy.configure(lm=dspy.LM("openai/gpt-4o-mini", api_base=os.environ["LM_URL"], api_key="sk-test-not-a-secret"))
    program = dspy.Predict("question -> answer")
    questions = json.loads(sys.argv[1])
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]},
                             "batching": {"type": "ray", "max_concurrency": 4,
                                          "ray": {"workers": 1, "num_cpus": 0.25, "start_timeout": 120}}})
    answers = []
    for batch in questions:
        answers.append([p.answer for p in turbo.batch(program, [{"question": q} for q in batch])])
        time.sleep(3)  # the batch's threads have ended: a Ray bound to one of them is gone by now
    turbo.close()
    print(json.dumps(answers))
""")


def test_a_local_ray_started_by_a_batch_serves_the_next_batch(lm_server):
    tag = uuid.uuid4().hex[:8]
    questions = [[f"{tag} first {i}?" for i in range(3)], [f"{tag} second {i}?" for i in range(3)]]
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "LM_URL": lm_server.url,
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(questions)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    answers = json.loads(done.stdout.strip().splitlines()[-1])

    program = dspy.Predict("question -> answer")  # plain DSPy on the same calls
    with dspy.context(lm=dspy.LM("openai/gpt-4o-mini", api_base=lm_server.url, api_key="sk-test-not-a-secret",
                                 cache=False)):
        expected = [[program(question=q).answer for q in batch] for batch in questions]
    assert answers == expected and all(all(batch) for batch in answers)
