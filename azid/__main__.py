"""`python -m azid`: the `azid` command line."""

from __future__ import annotations

import sys

from azid.cli import main

sys.exit(main())
