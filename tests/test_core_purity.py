"""azid_core does no I/O of its own: no OS, network, clock or event-loop imports (STYLE.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import azid_core

CORE = Path(azid_core.__file__).parent
BANNED = frozenset(
    {
        "socket",
        "ssl",
        "subprocess",
        "time",
        "os",
        "asyncio",
        "trio",
        "anyio",
        "httpx",
        "requests",
        "h11",
        "threading",
    }
)
ALLOWED = {"blocking.py"}


def banned_imports(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in BANNED]
    return found


def test_the_checker_finds_every_form_of_import() -> None:
    source = (
        "import os\nimport os.path as p\nfrom time import time\n"
        "def f():\n    import ssl, json\nfrom . import x\n"
    )
    assert banned_imports(source) == [(1, "os"), (2, "os.path"), (3, "time"), (5, "ssl")]


def test_no_core_module_imports_io() -> None:
    modules = sorted(CORE.rglob("*.py"))
    names = {path.relative_to(CORE).as_posix() for path in modules}
    assert names >= {"effects.py", "wire.py", "entra/endpoint.py", "acquire.py", "blocking.py"}
    offenders = {
        path.relative_to(CORE).as_posix(): found
        for path in modules
        if path.relative_to(CORE).as_posix() not in ALLOWED
        and (found := banned_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_blocking_is_the_one_module_that_touches_the_host() -> None:
    assert banned_imports((CORE / "blocking.py").read_text(encoding="utf-8"))


SCRIPT = """
import json, sys
import azid_core
from azid_core import ClientSecretCredential
from azid_core.acquire import TokenCall
from azid_core.drive import run
from azid_core.testing import EntraEmulator

emulator = EntraEmulator(clock=lambda: 1_700_000_000.0)
emulator.add_app("tenant-a", "client-a", "secret-a")
cred = ClientSecretCredential("tenant-a", "client-a", "secret-a", env={})
call = TokenCall(("https://vault.azure.net/.default",), None, None, False)
info = run(cred.fetch_flow(call, cred.cache_key(call), 1_700_000_000.0), emulator)
watched = ("httpx", "requests", "trio", "anyio", "h11", "asyncio", "subprocess")
print(json.dumps({
    "expires_on": info.expires_on,
    "requests": emulator.token_requests,
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in watched),
}))
"""


def test_importing_and_fetching_loads_no_io_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=CORE.parent,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report == {"expires_on": 1_700_003_600, "requests": 1, "loaded": []}
