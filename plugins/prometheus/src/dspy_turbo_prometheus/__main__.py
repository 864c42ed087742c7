import sys

from .sink import _main

sys.exit(_main())
