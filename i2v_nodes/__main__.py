"""``python -m i2v_nodes``: the pack's command line (see :mod:`i2v_nodes.cli`)."""

import sys

from i2v_nodes.cli import main

sys.exit(main())
