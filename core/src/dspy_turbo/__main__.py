"""``python -m dspy_turbo``: the ``dspy-turbo`` command."""

import sys

from .cli import main

sys.exit(main())
