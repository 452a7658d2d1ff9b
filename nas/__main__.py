"""``python -m nas`` is the ``nas`` command."""

import sys

from nas.app.cli import main

sys.exit(main())
