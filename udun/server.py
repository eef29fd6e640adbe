"""Running the API under gunicorn: one worker per core, the app built after fork."""
from __future__ import annotations

import os
from typing import Any

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any], admin: bool = False) -> None:
        self.options = options
        self.admin = admin
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Imported here, in the worker: PKCS#11 and the database are opened after fork.
        if self.admin:
            from adminapi import create_admin_app

            return create_admin_app()
        from webapi.app import create_app

        return create_app(schedule_checkpoints=True)


def serve(host: str, port: int, workers: int | None = None, *, admin: bool = False) -> None:
    """Run until SIGTERM/SIGINT. `preload_app` stays off (PKCS#11 after fork).

    Sync workers: verification is CPU-bound, so threads buy nothing under the GIL, and
    gthread pins each keep-alive connection to the worker that accepted it, which left
    one core idle in `make bench` (about 1,000 against 2,000 requests/s). Put a reverse
    proxy in front for slow clients and keep-alive.
    """
    _Gunicorn({
        "bind": f"{host}:{port}",
        "workers": workers or os.cpu_count() or 1,
        "worker_class": "sync",
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "keepalive": 5,
        "graceful_timeout": 5,
    }, admin).run()
