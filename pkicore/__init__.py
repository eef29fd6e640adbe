"""udun's pure shared core: errors, formats, token access, CMS, X.509, validation."""
