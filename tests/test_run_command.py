"""The RunCommand effect as every adapter carries it out (PROTOCOL.md §0.1 "Processes"): no shell, a
bare name found on PATH and never in the working directory, stdin null, the environment overrides
and cwd, the output bytes as written, and on a timeout or an overflow the whole process group killed.

The programs are small Python scripts written to tmp_path, on a PATH that holds nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from azid_core.blocking import find_program, kill_group
from azid_core.effects import CommandResult, RunCommand
from azid_core.entra.confidential import ClientSecretCredential
from azid_core.errors import TransportError
from tests.conftest import CLIENT, SECRET, TENANT

if TYPE_CHECKING:
    from pathlib import Path

    from tests.paths import Path as AdapterPath

# A real process deadline: short enough to keep the suite fast, long enough for a Python start.
DEADLINE = 0.5


def _script(directory: Path, name: str, body: str, *, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    target.write_text(f"#!{sys.executable}\nimport json, os, subprocess, sys, time\n{body}\n")
    target.chmod(mode)
    return target


def _send(path: AdapterPath, command: RunCommand) -> Any:
    cred = path.credential(ClientSecretCredential(TENANT, CLIENT, SECRET, env={}))
    try:
        return path.call(cred._send, command)
    finally:
        path.close(cred)


def _failure(path: AdapterPath, command: RunCommand) -> TransportError:
    with pytest.raises(TransportError) as info:
        _send(path, command)
    return info.value


def _alive(pid: int) -> bool:
    """Whether `pid` still runs (a zombie does not: it can no longer write anything)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_until_dead(pid: int) -> None:
    """A killed process is gone once its reaper (init) has run: poll for that, bounded."""
    give_up = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < give_up:
        time.sleep(0.01)
    assert not _alive(pid)


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="process liveness is read in /proc")

REPORT = """
report = {
    "argv": sys.argv[1:],
    "stdin": sys.stdin.buffer.read().decode(),
    "stdin_is_null": os.path.samestat(os.fstat(0), os.stat(os.devnull)),
    "cwd": os.getcwd(),
    "own_group": os.getpgid(0) == os.getpid(),
    "marker": os.environ.get("AZID_TEST_MARKER"),
    "kept": os.environ.get("AZID_TEST_KEPT"),
}
sys.stdout.buffer.write(json.dumps(report).encode())
sys.stderr.buffer.write(b"\\xff\\xfe not UTF-8 \\r\\n")
sys.exit(3)
"""


def test_exit_code_output_bytes_env_cwd_and_a_null_stdin(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    _script(bin_dir, "tool", REPORT)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("AZID_TEST_KEPT", "from the process")
    monkeypatch.setenv("AZID_TEST_MARKER", "replaced")
    command = RunCommand(
        ("tool", "a b", "; rm -rf ~", "$HOME"), str(work), (("AZID_TEST_MARKER", "override"),), timeout=10
    )
    result = _send(path, command)
    assert isinstance(result, CommandResult)
    assert result.returncode == 3
    assert result.stderr == b"\xff\xfe not UTF-8 \r\n"  # bytes as written: the core decodes
    assert json.loads(result.stdout) == {
        "argv": ["a b", "; rm -rf ~", "$HOME"],  # no shell: each argument arrives as one, untouched
        "stdin": "",
        "stdin_is_null": True,
        "cwd": str(work),
        "own_group": True,
        "marker": "override",
        "kept": "from the process",
    }


def test_path_from_the_overrides_and_a_path_with_a_directory_as_given(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _script(tmp_path / "bin", "tool", "print('ran', end='')")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    overridden = RunCommand(("tool",), env=(("PATH", str(tool.parent)),))
    assert _send(path, overridden) == CommandResult(0, b"ran", b"")
    assert _send(path, RunCommand((str(tool),))) == CommandResult(0, b"ran", b"")


def test_a_bare_name_is_never_run_from_the_working_directory(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    marker = tmp_path / "ran"
    _script(work, "az", f"open({str(marker)!r}, 'w').close()")
    monkeypatch.chdir(work)
    # Empty and relative entries would mean the working directory to a shell: they are skipped.
    search_path = os.pathsep.join(["", ".", "work", str(tmp_path / "empty")])
    monkeypatch.setenv("PATH", search_path)
    error = _failure(path, RunCommand(("az", "--version"), str(work)))
    assert error.kind == "not_found"
    assert str(error) == f"not_found: az was not found on PATH {search_path!r}"
    assert not marker.exists()


def test_an_unset_path_searches_the_default_directories_only(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PATH")
    error = _failure(path, RunCommand(("azid-no-such-tool",)))
    assert error.kind == "not_found"
    assert repr(os.defpath) in str(error)


@pytest.mark.parametrize("kind", ["not executable", "exec format", "no program"])
def test_a_program_that_cannot_start_is_a_spawn_failure(path: AdapterPath, tmp_path: Path, kind: str) -> None:
    if kind == "not executable":
        argv: tuple[str, ...] = (str(_script(tmp_path, "tool", "print('ran')", mode=0o644)),)
    elif kind == "exec format":
        garbage = tmp_path / "garbage"
        garbage.write_bytes(b"\x00\x01\x02 not a program")
        garbage.chmod(0o755)
        argv = (str(garbage),)
    else:
        argv = ()
    error = _failure(path, RunCommand(argv))
    assert error.kind == "spawn"
    assert (argv[0] if argv else "no program") in str(error)


GRANDCHILD = """
import sys, time
time.sleep(float(sys.argv[2]))
open(sys.argv[1], "w").close()
"""


def _timeout_script(directory: Path, style: str) -> Path:
    """A child that starts a grandchild which would write `marker` after the deadline, then waits
    (`waits`), exits at once leaving the grandchild holding its pipes (`exits`), or closes its output,
    the grandchild holding none, and waits (`silent`: only the child's exit could end the run)."""
    body = f"""
marker, pid_file = sys.argv[1], sys.argv[2]
style = {style!r}
quiet = subprocess.DEVNULL if style == "silent" else None
argv = [sys.executable, "-c", {GRANDCHILD!r}, marker, "{DEADLINE + 0.5}"]
grandchild = subprocess.Popen(argv, stdout=quiet, stderr=quiet)
with open(pid_file, "w") as out:
    out.write(f"{{os.getpid()}} {{grandchild.pid}}")
if style == "silent":
    os.close(1)
    os.close(2)
if style != "exits":
    time.sleep(30)
"""
    return _script(directory, "slow", body)


@needs_proc
@pytest.mark.parametrize("style", ["waits", "exits", "silent"])
def test_a_timeout_kills_the_whole_process_group(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, style: str
) -> None:
    _timeout_script(tmp_path / "bin", style)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    marker, pid_file = tmp_path / "late-write", tmp_path / "pids"
    started = time.monotonic()
    error = _failure(path, RunCommand(("slow", str(marker), str(pid_file)), timeout=DEADLINE))
    elapsed = time.monotonic() - started
    assert error.kind == "timeout"
    assert str(error) == f"timeout: slow did not finish within {DEADLINE} s"
    assert DEADLINE <= elapsed < DEADLINE + 1.0  # prompt: the grandchild's pipes did not hold it
    for pid in map(int, pid_file.read_text().split()):
        _wait_until_dead(pid)
    assert not marker.exists()  # killed before its write, and it can write nothing now


@needs_proc
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_over_the_cap_kills_the_group(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: str
) -> None:
    body = f"""
with open(sys.argv[1], "w") as out:
    out.write(str(os.getpid()))
sys.{stream}.buffer.write(b"x" * int(sys.argv[2]))
sys.{stream}.flush()
time.sleep(30)
"""
    _script(tmp_path / "bin", "chatty", body)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    error = _failure(path, RunCommand(("chatty", str(pid_file), "1001"), timeout=10, max_output_bytes=1000))
    assert time.monotonic() - started < 5  # not the deadline: the overflow ended the run
    assert error.kind == "too_large"
    assert str(error) == "too_large: chatty wrote over 1000 bytes"
    _wait_until_dead(int(pid_file.read_text()))


def test_output_at_the_cap_is_returned_whole(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "sys.stdout.buffer.write(b'o' * 70000); sys.stderr.buffer.write(b'e' * 70000)"
    _script(tmp_path / "bin", "full", body)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    result = _send(path, RunCommand(("full",), max_output_bytes=70000))
    assert result == CommandResult(0, b"o" * 70000, b"e" * 70000)


@needs_proc
def test_a_cancelled_async_run_kills_the_group(
    path: AdapterPath, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not path.is_async:
        pytest.skip("only an async caller can cancel a run")
    _timeout_script(tmp_path / "bin", "waits")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    marker, pid_file = tmp_path / "late-write", tmp_path / "pids"
    cred = path.credential(ClientSecretCredential(TENANT, CLIENT, SECRET, env={}))

    async def cancelled() -> bool:
        with anyio.move_on_after(DEADLINE) as scope:
            await cred._send(RunCommand(("slow", str(marker), str(pid_file)), timeout=30))
        return bool(scope.cancelled_caught)

    assert path.call(cancelled)
    path.close(cred)
    for pid in map(int, pid_file.read_text().split()):
        _wait_until_dead(pid)
    assert not marker.exists()


def test_kill_group_of_a_group_that_is_gone_is_quiet() -> None:
    done = subprocess.run([sys.executable, "-c", "pass"], start_new_session=True, check=True)
    assert done.returncode == 0
    child = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    child.wait()
    kill_group(child.pid)  # reaped, its group empty: nothing to kill, no error


def test_find_program_on_windows_tries_cmd_then_exe_then_the_bare_name(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    for directory, names in ((first, ["az.exe", "az"]), (second, ["az.cmd"])):
        directory.mkdir()
        for name in names:
            (directory / name).write_text("")
            (directory / name).chmod(0o755)
    search = f"relative;{first};{second}"
    assert find_program("az", search, windows=True) == str(first / "az.exe")  # directory order first
    (first / "az.cmd").write_text("")
    (first / "az.cmd").chmod(0o755)
    assert find_program("az", search, windows=True) == str(first / "az.cmd")
    (first / "az.cmd").unlink()
    (first / "az.exe").unlink()
    assert find_program("az", search, windows=True) == str(first / "az")
    assert find_program("az", "relative", windows=True) is None
    assert find_program("az", f"{first}:{second}") == str(first / "az")  # POSIX: ":" and no suffix
