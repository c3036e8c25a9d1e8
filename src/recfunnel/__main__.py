"""``python -m recfunnel ...`` (and ``torchrun ... -m recfunnel train ...``): the command line."""

import sys

from recfunnel.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
