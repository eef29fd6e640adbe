"""Process configuration at the edge: the environment, files and file locks (pkicore reads none)."""
