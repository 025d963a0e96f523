#!/usr/bin/env bash
# The system packages `make test` needs beyond Python (make demo needs none of them), checked in a
# second, before minutes of setup: the OS's PostgreSQL binaries and openssl (the TLS tests),
# redis-server, chromium (the browser tests), Java 17 and PostgreSQL's JDBC driver (Spark), and
# promtool and amtool (the alerting rules, their routing). Run as root with apt-get, it installs what is missing (what CI
# does: .ci/run calls it); otherwise, or with --check, it names what is missing and how to
# install it, in one line, and exits 1.
set -uo pipefail

install=1
[ "${1:-}" = "--check" ] && install=0
[ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || install=0

missing=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null || missing+=(openssl)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$install" = 0 ]; then
  echo "make test needs these system packages: ${missing[*]} (install: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "installing the test suite's system packages: ${missing[*]}"
# PostgreSQL's binaries only: no cluster of the OS's own (the tests start their servers)
mkdir -p /etc/postgresql-common
[ -f /etc/postgresql-common/createcluster.conf ] || echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
apt-get update -qq || exit 1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  -o Dpkg::Options::=--force-confold "${missing[@]}" || exit 1
