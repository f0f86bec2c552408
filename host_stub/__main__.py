"""``python -m host_stub``: see :mod:`host_stub.cli`."""

import sys

from host_stub.cli import main

sys.exit(main())
