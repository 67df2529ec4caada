"""Developer-tool credentials (PROTOCOL.md §5): tokens from the Azure CLI (`az`), the Azure Developer
CLI (`azd`) and Azure PowerShell (`pwsh`), each a flow yielding one `RunCommand`.

`common` holds what the three share (options, allow-lists, the run and its failures, the cache);
`az`, `azd` and `pwsh` hold each tool's argv, output parsing and error rows.
"""
