import sys
from pathlib import Path

# The docs' generators (docs/_gen) are what the site is built from; the tests use the same ones.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_gen"))
