import sys

from benchmarks.gate.cli import main

sys.exit(main())
