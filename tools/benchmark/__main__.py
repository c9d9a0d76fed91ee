"""``python -m benchmark``: runs the benchmark (``tools/bench`` sets up Odoo and the database)."""

import sys

from .cli import main

sys.exit(main())
