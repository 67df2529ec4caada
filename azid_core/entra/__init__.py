"""Microsoft Entra ID: authorities and tenants, the token endpoint, and one module per grant.

`authority` normalizes authorities and resolves tenants (PROTOCOL.md §1); `endpoint` POSTs to the
token endpoint and reads its replies; the other modules are credentials, each a grant of §2.
Users import the credentials from `azid_core`; this package holds no names of its own.
"""
