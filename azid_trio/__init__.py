"""azid on trio without httpx: HTTP/1.1 by h11 over trio TCP/TLS streams.

>>> async with azid_trio.Credential(ClientSecretCredential(tenant_id, client_id, secret)) as cred:
...     token = await cred.get_token("https://vault.azure.net/.default")

`Credential` and `TrioHttp` load on first use (PEP 562), so `import azid_trio` loads neither trio nor h11.
`azid_trio.h11_engine` is the loop-free HTTP/1.1 engine; `azid_trio.http` gives it trio's streams.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .credential import Credential
    from .http import TrioHttp

__all__ = ["Credential", "TrioHttp"]


def __getattr__(name: str) -> object:
    if name == "Credential":
        from .credential import Credential

        return Credential
    if name == "TrioHttp":
        from .http import TrioHttp

        return TrioHttp
    raise AttributeError(f"module 'azid_trio' has no attribute {name!r}")
