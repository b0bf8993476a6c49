"""``python -m mammolibs``: the ``mammo`` command line."""

import sys

from mammolibs.cli import main

sys.exit(main())
