"""``python -m cs231n``: see :mod:`cs231n.cli`."""
import sys

from cs231n.cli import main

sys.exit(main())
