#!/usr/bin/env bash
# Real head CT for tests/ct/test_head_ct.py: Debian's invesalius-examples (Cranium.inv3).
# Exits 0 where it cannot install (no root, no apt, no network); the test then skips with a reason.
set -u
FILE=/usr/share/doc/invesalius-examples/examples/Cranium.inv3
[ -f "$FILE" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-invesalius: no apt-get; the head CT test will skip"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "setup-invesalius: not root and no passwordless sudo; the head CT test will skip"
    exit 0
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || echo "setup-invesalius: apt-get update failed"
if ! $SUDO apt-get install -y -qq invesalius-examples >/dev/null 2>&1; then
  echo "setup-invesalius: could not install invesalius-examples; the head CT test will skip"
fi
[ -f "$FILE" ] || echo "setup-invesalius: $FILE is still absent; the head CT test will skip"
exit 0
