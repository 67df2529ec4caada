"""Putting fake developer tools on a temporary PATH (the script text comes from azid_core.testing.fake_tools).

    from azid_core.testing.fake_tools import az_output, fake_tool_script
    from tests.fake_tools import install, records

    install(tmp_path, "az", fake_tool_script(stdout=az_output("tok"), record_path=str(tmp_path / "az.jsonl")))
    monkeypatch.setenv("PATH", str(tmp_path))   # or env={"PATH": ...} where a credential takes env
    ...
    assert records(tmp_path / "az.jsonl")[0]["argv"][1:3] == ["account", "get-access-token"]

`install` writes `<directory>/<name>` and marks it executable; `records` reads the JSON lines a fake
tool appended, one per run: argv, cwd (as os.getcwd() sees it, so resolved: /bin may read /usr/bin),
the RECORDED_ENV subset, stdin_is_null, pid, pgid.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any


def install(directory: str | Path, name: str, script: str) -> Path:
    """Write `script` as the executable `<directory>/<name>` and return its path."""
    path = Path(directory) / name
    path.write_text(script, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def records(record_path: str | Path) -> list[dict[str, Any]]:
    """The invocations a fake tool recorded, oldest first (none if it never ran)."""
    path = Path(record_path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
