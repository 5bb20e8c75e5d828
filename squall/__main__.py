"""`python -m squall`: the command line.

`-m` puts the current directory first on sys.path; an app directory holding `queue.py`
or `json.py` would then replace standard modules for the whole node. The app's directory
is added by the loader instead, after the standard library.
"""

import os
import sys

if sys.path and not sys.flags.safe_path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from squall.cli import main  # noqa: E402 - after the path fix above

main()
