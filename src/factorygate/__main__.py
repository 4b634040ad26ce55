"""Allow ``python -m factorygate``."""

import sys

from factorygate.cli import main

sys.exit(main())
