"""The `udun` command line: the top layer over ca, signer and (by process) webapi."""
