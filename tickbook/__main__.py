import sys

from tickbook.cli import main

sys.exit(main())
