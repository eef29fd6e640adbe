"""The HTTP API (Flask): verification for banks, certificate admin; no crypto in views."""
from webapi.app import create_app

__all__ = ["create_app"]
