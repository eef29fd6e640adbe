"""Text people read: refuse what could make the displayed text differ from the data.

Shared by the payment format (what the user sees before signing) and certificate subjects
(what a bank sees as the signer's name).
"""
from __future__ import annotations

import unicodedata

# Control, format (bidi overrides, zero-width joiners), private-use, surrogate, unassigned,
# and line/paragraph separators that would let one field pose as several lines.
_HIDDEN = frozenset(("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"))


def visible_problem(value: str) -> str | None:
    """Why ``value`` is not plain visible NFC text, or None when it is."""
    if value != unicodedata.normalize("NFC", value):
        return "must be in Unicode NFC form"
    for ch in value:
        if unicodedata.category(ch) in _HIDDEN:
            return f"contains an invisible or control character U+{ord(ch):04X}"
    return None
