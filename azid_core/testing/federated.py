"""The emulator's check of federated client assertions (PROTOCOL.md §2.3, §2.4). (Being built.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .entra import EntraFault

if TYPE_CHECKING:
    from .entra import EntraApp, EntraEmulator

__all__ = ["check_federated_assertion"]


def check_federated_assertion(emulator: EntraEmulator, app: EntraApp, assertion: str) -> EntraFault | None:
    return EntraFault(400, "invalid_client", 70021, "Federated assertions are not checked yet.")
