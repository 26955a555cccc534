import sys

from offload.gateway.cli import main

sys.exit(main())
