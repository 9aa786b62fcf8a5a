#!/bin/sh
# Make a throwaway CA, the broker's certificate, a client certificate and a password per role,
# Mosquitto's password file, an InfluxDB token and admin password and a Grafana admin password:
# for a test or a first install.  A plant replaces them with certificates from its own CA and
# secrets from its own vault (docs/deployment.md, Secrets).
#
#   deploy/make-secrets.sh OUT_DIR [BROKER_NAME ...]
#
# BROKER_NAME: the host names and IP addresses clients use to reach the broker; they go into
# the server certificate, which clients check (default: localhost 127.0.0.1 mosquitto and this
# host's name).  Writes into OUT_DIR (created, mode 0700, so that only its owner can reach the
# files, which are 0644 inside: compose mounts them into containers that run as other users;
# a host install copies them with their own owners and modes; refuses to overwrite a CA):
#   ca.crt ca.key            the CA (keep ca.key off the broker; clients need ca.crt)
#   server.crt server.key    the broker's certificate and key
#   passwords                Mosquitto's password file (salted hashes)
#   ROLE.password            each role's password, for that client's password_file
#   ROLE.crt ROLE.key        each role's client certificate (for require_certificate true)
#   influx.token influx.password grafana.password   for the compose stack's InfluxDB and Grafana
# Needs openssl and mosquitto_passwd (Debian: openssl, mosquitto).
set -eu

ROLES="controller plant operator viewer"
DAYS=825   # the longest validity clients such as macOS/iOS accept for a server certificate

if [ $# -lt 1 ]; then
    echo "usage: $0 OUT_DIR [BROKER_NAME ...]" >&2
    exit 2
fi
out=$1
shift
if [ $# -eq 0 ]; then
    set -- localhost 127.0.0.1 mosquitto "$(hostname)"
fi
for tool in openssl mosquitto_passwd; do
    if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ] && [ ! -x "/usr/bin/$tool" ]; then
        echo "$0: $tool not found (Debian: apt-get install openssl mosquitto)" >&2
        exit 1
    fi
done
passwd_tool=$(command -v mosquitto_passwd || echo /usr/bin/mosquitto_passwd)
if [ -e "$out/ca.key" ]; then
    echo "$0: $out/ca.key exists: remove $out to make new secrets" >&2
    exit 1
fi

umask 077
mkdir -p "$out"
chmod 0700 "$out"
umask 022
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

san=""
for name in "$@"; do
    case $name in
        *[!0-9.]*) entry="DNS:$name" ;;
        *) entry="IP:$name" ;;
    esac
    san="${san:+$san,}$entry"
done

# the CA
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$DAYS" \
    -subj "/O=smelter-ems/CN=smelter-ems throwaway CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$out/ca.key" -out "$out/ca.crt" 2>/dev/null

# sign NAME with extensions EXT: NAME.key, NAME.crt
sign() {
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -subj "/O=smelter-ems/CN=$1" -keyout "$out/$1.key" -out "$tmp/$1.csr" 2>/dev/null
    printf '%s\n' "$2" >"$tmp/$1.ext"
    openssl x509 -req -in "$tmp/$1.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
        -CAcreateserial -CAserial "$tmp/ca.srl" -days "$DAYS" -extfile "$tmp/$1.ext" \
        -out "$out/$1.crt" 2>/dev/null
}

sign server "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"

: >"$tmp/plain"
for role in $ROLES; do
    sign "$role" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
    # 24 random bytes, base64: 32 characters without ':' (the password file's separator)
    password=$(openssl rand -base64 24)
    printf '%s' "$password" >"$out/$role.password"
    printf '%s:%s\n' "$role" "$password" >>"$tmp/plain"
done
# hashed in place (-U): the passwords never appear on a command line
"$passwd_tool" -U "$tmp/plain"
cp "$tmp/plain" "$out/passwords"
openssl rand -hex 32 | tr -d '\n' >"$out/influx.token"
openssl rand -base64 24 | tr -d '\n' >"$out/influx.password"
openssl rand -base64 24 | tr -d '\n' >"$out/grafana.password"
chmod 0644 "$out"/*
echo "secrets for roles $ROLES in $out (server names: $*)"
