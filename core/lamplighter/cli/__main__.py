"""``python -m lamplighter.cli``: the ``lamplighter`` command."""

import sys

from lamplighter.cli import main

sys.exit(main())
