"""A DSPy service that never stops, exporting Prometheus metrics: something to watch.

    python examples/metrics_service.py --port 9464 &
    dspy-turbo top --url http://127.0.0.1:9464/metrics

It runs the demo's question-answering program (2 x ChainOfThought + retriever) against
the offline LM in a loop: most questions repeat (cache hits), some are new (LM calls),
so hit rate, latency and dollars saved move. An alert rule fires while the hit rate is
low (at the start, with a cold cache) and clears once the cache is warm.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import dspy  # noqa: E402

import dspy_turbo  # noqa: E402
from dspy_turbo.cli.demo import QAPipeline, build_questions  # noqa: E402
from dspy_turbo.engines.offline import offline_lm  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464, help="0: any free port (the URL is printed)")
    parser.add_argument("--latency", type=float, default=0.05, help="offline LM latency per call, seconds")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run until Ctrl-C)")
    args = parser.parse_args(argv)

    turbo = dspy_turbo.load({
        "namespace": "metrics-service",
        "cache": {"tiers": [{"type": "memory", "max_bytes": "64MB"}]},
        "metrics": {
            "sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": args.port}],
            "alerts": [{"name": "low-hit-rate", "metric": "hit_rate", "below": 0.5, "window": "30s", "min_events": 20}],
        },
    }).install()
    print(f"metrics: {turbo.sinks[0].url}", flush=True)
    program = QAPipeline()
    questions = build_questions(60)
    rng = random.Random(0)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    round_ = 0
    try:
        with dspy.context(lm=offline_lm("openai/gpt-4o-mini", latency=args.latency, jitter=0.25)):
            while deadline is None or time.monotonic() < deadline:
                round_ += 1
                batch = rng.sample(questions, 8) + [f"{rng.choice(questions)} (variant {round_})"]
                program.batch([dspy.Example(question=q).with_inputs("question") for q in batch],
                              num_threads=4, disable_progress_bar=True)
    except KeyboardInterrupt:
        pass
    finally:
        turbo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
