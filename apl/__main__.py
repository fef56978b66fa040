import sys

from apl.cli import main

sys.exit(main())
