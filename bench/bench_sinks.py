"""bench_core's rows with metric sinks configured: what the Prometheus and log sinks cost.

    python bench/bench_sinks.py            # full run
    python bench/bench_sinks.py --quick

Sinks run on background threads (dspy_turbo.events.sink_queue), so the caller only appends each
event to a queue; but under the GIL their work is CPU the program does not get. This
runs bench_core unchanged except that turbo's config adds a ``prometheus`` sink (no HTTP
server) and a ``log`` sink (at the default WARNING level, so it formats nothing). The
targets printed are bench_core's, which are meant for the no-sink configuration.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # noqa: E402

bench_core.MEMORY_ONLY = {
    "cache": {"tiers": [{"type": "memory"}]},
    "metrics": {"sinks": [{"type": "prometheus", "port": None}, {"type": "log"}]},
}

if __name__ == "__main__":
    print("turbo config:", bench_core.MEMORY_ONLY)
    sys.exit(bench_core.main(sys.argv[1:]))
