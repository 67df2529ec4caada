"""azid's application layer: the `azid` command line (`azid.cli`), the loopback server that serves the
emulator (`azid.server`) and the pytest plugin (`azid.pytest_plugin`). Nothing in azid_core or the
adapters imports this package; it imports them.
"""

from __future__ import annotations
