"""Test doubles that need no network: a scripted effect handler and a Microsoft Entra ID emulator.

`ScriptedIO` answers effects with canned replies and records them. `EntraEmulator` is a pure request
handler (`HttpRequest -> HttpResponse`) playing Entra ID; tests call it in-process, or serve it on a
loopback port for the adapters. The emulator needs pyjwt (the `test` and `cert` extras).
"""

from __future__ import annotations

from .entra import EntraApp, EntraEmulator
from .scripted import ScriptedIO

__all__ = ["EntraApp", "EntraEmulator", "ScriptedIO"]
