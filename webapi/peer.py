"""The verified TLS client certificate, in every request's WSGI environ (Flask:
request.environ), as udun.server's worker puts it there. Names with dots cannot come from
a client: headers arrive as HTTP_*."""
ENV_CLIENT_SUBJECT = "udun.tls.client_subject"
ENV_CLIENT_ISSUER = "udun.tls.client_issuer"
ENV_CLIENT_SERIAL = "udun.tls.client_serial"
ENV_CLIENT_SHA256 = "udun.tls.client_sha256"      # hex SHA-256 of the certificate's DER
