"""WSGI entry for gunicorn (`udun serve`): one app per worker, created after fork."""
from webapi.app import create_app

app = create_app(schedule_checkpoints=True)
