"""Managed identity: detecting the hosting source from the environment, and one module per source
(IMDS, App Service, Azure Arc, Azure ML, Cloud Shell, Service Fabric) (PROTOCOL.md §4).

`common` holds what the sources share; users import `ManagedIdentityCredential` from `azid_core`.
"""
