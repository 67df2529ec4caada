"""Test doubles that need no network: a scripted effect handler and a Microsoft Entra ID emulator.

`ScriptedIO` answers effects with canned replies and records them. `IdentityEmulator` is a pure
request handler (`HttpRequest -> HttpResponse`) playing Entra ID and the managed-identity endpoints
(`EntraEmulator` and `ManagedIdentityEmulator` are its parts); tests call it in-process, or serve it
on a loopback port for the adapters, and inject `Fault`s. The emulator needs pyjwt and cryptography
(the `test` and `cert` extras).
"""

from __future__ import annotations

from .emulator import IdentityEmulator
from .entra import EntraApp, EntraEmulator
from .managed_identity import ManagedIdentityEmulator
from .scripted import ScriptedIO
from .service import Fault

__all__ = ["EntraApp", "EntraEmulator", "Fault", "IdentityEmulator", "ManagedIdentityEmulator", "ScriptedIO"]
