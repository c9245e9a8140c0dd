"""`python -m hypernetes` runs the `hypernetes` command."""

import sys

from hypernetes.cli import main

sys.exit(main())
