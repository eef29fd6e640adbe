"""The admin app's services on its CA, made at first use and kept in the app's context."""
from __future__ import annotations

from typing import Any, Callable, TypeVar

from flask import current_app

T = TypeVar("T")


def service(name: str, make: Callable[[Any], T]) -> T:
    """The app's ``name`` service, ``make(ca)`` the first time."""
    ctx: dict[str, Any] = current_app.extensions["udun-admin"]
    if name not in ctx:
        ctx.setdefault(name, make(ctx["ca"]))     # two first uses at once: one of them is kept
    return ctx[name]  # type: ignore[no-any-return]
