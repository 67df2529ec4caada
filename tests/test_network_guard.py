"""The suite's network guard (tests/conftest.py): an audit hook refusing any connection or name
lookup off the loopback interface. Checked by calling the hook's logic with the events Python would
raise, so that not even a broken guard could send a packet anywhere."""

from __future__ import annotations

import pytest

from tests import loopback


def test_the_guard_is_installed_for_the_whole_suite() -> None:
    assert loopback._hooked == [True]


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("socket.connect", (None, ("169.254.169.254", 80))),  # expected refused: the default IMDS
        ("socket.connect", (None, ("20.190.160.1", 443, 0, 0))),
        ("socket.getaddrinfo", ("login.microsoftonline.com", 443, 0, 0, 0)),
        ("socket.getaddrinfo", (b"management.azure.com", 443, 0, 0, 0)),
    ],
)
def test_off_loopback_is_refused(event: str, args: tuple[object, ...]) -> None:
    with pytest.raises(loopback.OffLoopbackError, match=r"only 127\.0\.0\.1 may be contacted"):
        loopback._audit(event, args)


@pytest.mark.parametrize(
    ("event", "args"),
    [
        ("socket.connect", (None, ("127.0.0.1", 8080))),
        ("socket.connect", (None, ("::1", 8080, 0, 0))),
        ("socket.connect", (None, "/tmp/unix.sock")),
        ("socket.getaddrinfo", ("localhost", 80, 0, 0, 0)),
        ("socket.getaddrinfo", (None, 0, 0, 0, 0)),
        ("open", ("/etc/hosts", "r", 0)),
    ],
)
def test_loopback_and_other_events_pass(event: str, args: tuple[object, ...]) -> None:
    loopback._audit(event, args)  # raises for anything it refuses
