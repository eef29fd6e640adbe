#!/bin/sh
# The image's entry point: runs its command (`make test`, `make demo`, any `udun ...`).
# Demo path, only for `udun serve` with UDUN_DEMO_CA=1 (the image's default): when
# UDUN_HOME holds no CA yet, create one with `udun ca init` first (root, issuing CA and
# online token on SoftHSM in the volume, PINs in its secrets/). That puts the CA key beside
# the bank-facing server: a demo, not the production split. With UDUN_DEMO_CA=0, or any
# other command, nothing is set up here.
set -eu
if [ "${1:-}" = "udun" ] && [ "${2:-}" = "serve" ] && [ "${UDUN_DEMO_CA:-0}" = "1" ]; then
  if ! udun ca chain -o /dev/null 2>/dev/null; then
    echo "docker-entrypoint: no CA in ${UDUN_HOME}: demo path, running udun ca init" >&2
    udun ca init
  fi
fi
exec "$@"
