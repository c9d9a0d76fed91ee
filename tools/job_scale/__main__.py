"""``python -m job_scale``: the registry jobs at scale (``tools/job_scale/run`` sets it up)."""

import sys

from .cli import main

sys.exit(main())
