#!/bin/sh
# Copy the online SoftHSM token (the delegated OCSP responder and TSA keys) and its PIN
# file from the UDUN_HOME where the CA makes them to a `udun serve` node's UDUN_HOME.
#
#   hsm-config/copy-online-token.sh [--label L] [--no-pin] [--owner USER] SOURCE_HOME DEST_HOME
#
# Each node gets a copy of its own: SoftHSM's file store is not made for two machines (or
# two homes) writing one directory, and a node's token directory must never be the CA
# side's. Run it after every `udun ca renew-delegated` (or `udun ca jobs` run that renewed),
# not while one is running: the copy is of the directory as it is. The token keeps its
# serial (SoftHSM derives it from the directory's name), so UDUN_ONLINE_TOKEN_SERIAL names
# it on every node. A running node may be copied to: the new directory is renamed into
# place, and the node re-opens its keys (one retry, or a 503 for at most a few seconds).
# Only the online token: the CA tokens (UDUN_CA_TOKEN, UDUN_ROOT_TOKEN) stay where the CA
# key is, and so does secrets/ca.pin. See hsm-config/README.md.
set -eu

label="${UDUN_ONLINE_TOKEN:-udun-online}"
copy_pin=yes
owner=""
usage() {
    echo "usage: $0 [--label LABEL] [--no-pin] [--owner USER] SOURCE_HOME DEST_HOME" >&2
    exit 2
}
while [ $# -gt 0 ]; do
    case "$1" in
        --label) [ $# -ge 2 ] || usage; label="$2"; shift 2 ;;
        --no-pin) copy_pin=no; shift ;;
        --owner) [ $# -ge 2 ] || usage; owner="$2"; shift 2 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 2 ] || usage
src_home="$1"
dst_home="$2"

fail() { echo "copy-online-token: $*" >&2; exit 1; }

case "$label" in
    "${UDUN_CA_TOKEN:-udun-ca}"|"${UDUN_ROOT_TOKEN:-udun-root}")
        fail "$label is a CA token: it stays where the CA key is (this script copies the online token only)" ;;
esac
command -v softhsm2-util >/dev/null || fail "softhsm2-util is not installed (Debian: apt-get install softhsm2)"
[ -f "$src_home/softhsm2.conf" ] || fail "$src_home/softhsm2.conf not found: is $src_home a UDUN_HOME with SoftHSM tokens?"

umask 077
# The token directory a home's SoftHSM uses: its softhsm2.conf's, else udun's default.
tokendir_of() {
    if [ -f "$1/softhsm2.conf" ]; then
        sed -n 's/^[[:space:]]*directories\.tokendir[[:space:]]*=[[:space:]]*//p' "$1/softhsm2.conf" | tail -n 1
    else
        echo "$1/tokens"
    fi
}
src_tokens="$(tokendir_of "$src_home")"
[ -d "$src_tokens" ] || fail "no token directory $src_tokens"
mkdir -p "$dst_home"
chmod 700 "$dst_home"
dst_tokens="$(tokendir_of "$dst_home")"
mkdir -p "$dst_tokens"
chmod 700 "$dst_tokens"
if [ "$(cd "$src_tokens" && pwd -P)" = "$(cd "$dst_tokens" && pwd -P)" ]; then
    fail "$dst_home uses the same token directory as $src_home: copy, do not share"
fi

# "serial label" lines of every initialised token under a token directory, listed by
# SoftHSM itself through a throwaway config (nothing is written to either home).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM
list_tokens() {
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
        "$1" > "$work/softhsm2.conf"
    SOFTHSM2_CONF="$work/softhsm2.conf" softhsm2-util --show-slots | awk '
        /Serial number:/ { serial = $3 }
        /Label:/ { sub(/^[[:space:]]*Label:[[:space:]]*/, ""); sub(/[[:space:]]+$/, "");
                   if (serial != "" && $0 != "") print serial, $0; serial = "" }'
}
serials_of() { list_tokens "$1" | awk -v l="$label" '{ s = $1; $1 = ""; sub(/^ /, ""); if ($0 == l) print s }'; }

serial="$(serials_of "$src_tokens")"
[ -n "$serial" ] || fail "no token labelled $label under $src_tokens"
[ "$(echo "$serial" | wc -l)" -eq 1 ] || fail "more than one token labelled $label under $src_tokens"

# SoftHSM 2 names a token's directory by a UUID and takes the serial from its characters
# 20-23 and 25-36 (ObjectStore::newToken), so the directory follows from the serial.
name=""
for d in "$src_tokens"/*/; do
    d="${d%/}"
    n="$(basename "$d")"
    if [ "$(echo "$n" | cut -c20-23)$(echo "$n" | cut -c25-36)" = "$serial" ]; then
        [ -z "$name" ] || fail "two directories under $src_tokens carry serial $serial"
        name="$n"
    fi
done
[ -n "$name" ] || fail "no directory under $src_tokens holds token $label (serial $serial)"

# A node holding another token with this label (an older CA's) would find two of them.
for other in $(serials_of "$dst_tokens"); do
    [ "$other" = "$serial" ] || fail "$dst_tokens already holds a different token labelled $label (serial $other): remove it first"
done

# Copy beside the token directory (same file system, outside it so the node's SoftHSM never
# sees a half-made token), then rename into place.
staging="$dst_home/.online-token-copy.$$"
rm -rf "$staging"
cp -Rp "$src_tokens/$name" "$staging"
chmod -R u=rwX,go= "$staging"
[ -z "$owner" ] || chown -R "$owner" "$staging"
if [ -e "$dst_tokens/$name" ]; then
    mv "$dst_tokens/$name" "$staging.old"
fi
mv "$staging" "$dst_tokens/$name"
rm -rf "$staging.old"

if [ "$copy_pin" = yes ]; then
    if [ -f "$src_home/secrets/online.pin" ]; then
        mkdir -p "$dst_home/secrets"
        chmod 700 "$dst_home/secrets"
        cp "$src_home/secrets/online.pin" "$dst_home/secrets/online.pin.$$"
        chmod 600 "$dst_home/secrets/online.pin.$$"
        mv "$dst_home/secrets/online.pin.$$" "$dst_home/secrets/online.pin"
        [ -z "$owner" ] || chown -R "$owner" "$dst_home/secrets"
    else
        echo "copy-online-token: $src_home/secrets/online.pin not found: give the node UDUN_ONLINE_PIN" >&2
    fi
fi
[ -z "$owner" ] || chown "$owner" "$dst_home" "$dst_tokens"

[ "$(serials_of "$dst_tokens")" = "$serial" ] || fail "the copy in $dst_tokens does not list token $label (serial $serial)"
echo "copied token $label (serial $serial) to $dst_tokens/$name"
echo "on the node: UDUN_ONLINE_TOKEN_SERIAL=$serial (and the CA's UDUN_DATABASE_URL)"
