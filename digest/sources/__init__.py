"""Sources stage: fetch every configured source concurrently, parse, and merge by identity.

Public API (used by the pipeline and the CLI):

    fetch_all(specs, *, day, client=None) -> list[SourceResult]   # never raises for one bad source
    merge(results) -> list[Paper]                                   # one Paper per identity key

INTERFACE STUB: being implemented; the signatures above are the contract.
"""
