"""The fake developer tools: the script runs as the tool, records its call and plays the canned output."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from azid_core.testing import fake_tools
from tests.fake_tools import install, records


def test_a_fake_tool_records_its_call_and_plays_its_output(tmp_path: Path) -> None:
    log = tmp_path / "az.jsonl"
    script = fake_tools.fake_tool_script(
        stdout=fake_tools.az_output("tok"), stderr=b"warn\n", exit_code=3, record_path=str(log)
    )
    path = install(tmp_path, "az", script)
    assert records(log) == []
    done = subprocess.run(
        [str(path), "account", "get-access-token"],
        cwd="/bin",
        env={"PATH": "/usr/bin", "NO_COLOR": "true"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    assert (done.returncode, done.stderr) == (3, b"warn\n")
    assert json.loads(done.stdout)["accessToken"] == "tok"
    (seen,) = records(log)
    assert seen["argv"] == [str(path), "account", "get-access-token"]
    assert seen["cwd"] == str(Path("/bin").resolve())  # the real path: /bin may be a link
    assert seen["env"] == {
        "AZURE_CORE_NO_COLOR": None,
        "NO_COLOR": "true",
        "AZID_PROCESS_TIMEOUT": None,
        "PATH": "/usr/bin",
    }
    assert seen["stdin_is_null"] is True
    assert seen["pid"] > 0


def test_a_fake_tool_without_a_record_path_only_answers(tmp_path: Path) -> None:
    path = install(
        tmp_path, "pwsh", fake_tools.fake_tool_script(stdout=fake_tools.pwsh_output("t", 42), sleep=0.01)
    )
    done = subprocess.run([str(path)], capture_output=True, check=False, stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stdout) == (0, b"azsdk%t%42\n")
    assert list(tmp_path.iterdir()) == [path]


def test_canned_outputs() -> None:
    assert json.loads(fake_tools.az_output("t", expires_on=None)) == {
        "accessToken": "t",
        "expiresOn": "2030-01-02 03:04:05.000000",
        "subscription": "00000000-0000-0000-0000-000000000001",
        "tenant": "00000000-0000-0000-0000-000000000002",
        "tokenType": "Bearer",
    }
    assert "expiresOn" not in json.loads(fake_tools.az_output("t", expires_on_local=None))
    assert json.loads(fake_tools.azd_output("t")) == {"token": "t", "expiresOn": "2038-01-18T00:00:00Z"}
    first, second = fake_tools.azd_error_output("m", error="e").splitlines()
    assert json.loads(first) == {"error": "e"}
    assert json.loads(second)["data"] == {"message": "m"}
    assert fake_tools.clixml("a\nb").endswith('<S S="Error">a_x000D__x000A_b</S></Objs>')
    assert fake_tools.fake_jwt("x").startswith("eyJ")
    assert fake_tools.fake_tool_script(python="/py").startswith("#!/py\n")
