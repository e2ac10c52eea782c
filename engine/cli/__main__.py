"""``python -m engine.cli`` runs ``delineo-engine``."""

import sys

from . import main

sys.exit(main())
