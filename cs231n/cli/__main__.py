"""``python -m cs231n.cli``: the same as ``python -m cs231n``."""
import sys

from cs231n.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
