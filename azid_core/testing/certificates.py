"""The emulator's check of certificate-signed client assertions (PROTOCOL.md §2.2). (Being built.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .entra import EntraFault

if TYPE_CHECKING:
    from .entra import EntraApp

__all__ = ["check_certificate_assertion"]


def check_certificate_assertion(
    app: EntraApp, assertion: str, header: dict[str, Any], *, audience: str, now: float
) -> EntraFault | None:
    return EntraFault(400, "invalid_client", 700027, "Certificate assertions are not checked yet.")
