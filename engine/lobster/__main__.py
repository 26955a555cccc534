"""`python -m engine.lobster ...`: the same command line as `tickbook lobster` (make lobster-sweep)."""

import sys

from engine.lobster.cli import main

sys.exit(main())
