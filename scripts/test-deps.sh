#!/usr/bin/env bash
# System packages the tests need (model servers written in other languages, a
# PostgreSQL server that tests/pgserver.py starts on loopback, and the chromium the
# web console's browser tests drive through Playwright).
set -euo pipefail

# True when PostgreSQL server binaries are installed: on PATH, or where Debian puts
# them (/usr/lib/postgresql/<version>/bin, which is not on PATH).
have_postgres_server() {
  if command -v initdb >/dev/null 2>&1 && command -v postgres >/dev/null 2>&1; then
    return 0
  fi
  local bindir
  for bindir in /usr/lib/postgresql/*/bin; do
    if [ -x "$bindir/initdb" ] && [ -x "$bindir/postgres" ]; then
      return 0
    fi
  done
  return 1
}

missing=()
command -v perl >/dev/null 2>&1 || missing+=(perl)
have_postgres_server || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  # env, not an exported variable: sudo drops the caller's environment.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! have_postgres_server; then
  echo "test-deps: PostgreSQL server binaries (initdb, postgres) still not found" >&2
  exit 1
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "test-deps: chromium still not found" >&2
  exit 1
fi
