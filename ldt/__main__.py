"""``python -m ldt``: the same as the ``ldt`` command."""

import sys

from ldt.cli import main

sys.exit(main())
