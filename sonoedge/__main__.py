import sys

from sonoedge.cli import main

sys.exit(main())
