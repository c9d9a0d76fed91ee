"""``python -m fault_suite``: runs the load and fault suite (``tools/fault_suite/run`` sets it up)."""

import sys

from .cli import main

sys.exit(main())
