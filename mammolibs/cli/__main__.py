"""``python -m mammolibs.cli`` (as torchrun starts it: ``torchrun -m mammolibs.cli train STAGE ...``)."""

import sys

from mammolibs.cli import main

sys.exit(main())
