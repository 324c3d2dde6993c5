"""`python -m e5kit` runs the CLI."""

import sys

from e5kit.cli import main

sys.exit(main())
