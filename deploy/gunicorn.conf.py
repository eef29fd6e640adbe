# gunicorn settings for `udun serve` / `udun serve-admin` (UDUN_GUNICORN_CONFIG or the
# gunicorn_config key of udun.toml names this file). A gunicorn Python config file as
# gunicorn documents it (https://docs.gunicorn.org/en/stable/settings.html): names that are
# not gunicorn settings are ignored, as gunicorn does. Applied over udun's defaults; an
# explicit --workers on the command line wins over `workers` here.
#
# udun refuses, with the reason, the settings it must keep: preload_app (PKCS#11 is opened
# after fork, in each worker), worker_class and threads (udun's sync worker: one PKCS#11
# session per process), bind (--host/--port), raw_env, wsgi_app/paste, and every TLS
# setting (certfile, keyfile, ca_certs, cert_reqs, ciphers, ssl_version, ssl_context, ...:
# TLS comes from UDUN_TLS_*). child_exit may be defined: udun calls its own first.
# Keep this file root-owned and not writable by others: it is code the server runs.
import multiprocessing

# Verification is CPU-bound: one sync worker per core (udun's default too).
workers = multiprocessing.cpu_count()

# A worker that does not answer for this long is killed and replaced. Verifications that
# fetch other CAs' OCSP/CRLs can take a few seconds; 30 is gunicorn's default.
timeout = 30
graceful_timeout = 20          # in-flight requests get this long on SIGTERM (udun's default: 5)
keepalive = 5

# Replace each worker after this many requests (spread by the jitter): bounds slow leaks.
# max_requests = 100000
# max_requests_jitter = 5000

# gunicorn's own log: errors on stderr (the journal). udun's application log (one JSON object
# per request) goes to UDUN_LOG_FILE or stderr and is configured there, not here.
errorlog = "-"
loglevel = "warning"

# An access log in gunicorn's format, besides udun's JSON lines. The verified bank client
# certificate is in the WSGI environ as udun.tls.client_subject / _issuer / _serial / _sha256.
# accesslog = "/var/log/udun/access.log"
# access_log_format = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(L)ss client="%({udun.tls.client_subject}e)s"'

# Behind a reverse proxy on the same host: whose X-Forwarded-* headers to believe.
# forwarded_allow_ips = "127.0.0.1,::1"

# Request limits (defaults shown); a CMS with a long chain fits in the default body size.
# limit_request_line = 4094
# limit_request_fields = 100


# Hooks, if wanted. udun's own child_exit (metrics of a dead worker) runs before this one.
# def child_exit(server, worker):
#     server.log.warning("worker %s exited", worker.pid)
