"""Lets example tests import the end-to-end helpers: `from tests.support import NodeProcess`."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
