#!/usr/bin/env bash
# The status page in headless Chromium (Debian's package, driven by playwright-core from npm):
# installs what it needs, runs tests/page/page.test.mjs against the release `keel` binary, and
# leaves screenshots in target/ci-artifacts.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v chromium >/dev/null; then
  echo "page: installing chromium"
  if ! apt-get install -y -q chromium >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q chromium >/dev/null
  fi
fi
if ! command -v node >/dev/null; then
  echo "page: node is required" >&2
  exit 1
fi
npm ci --no-audit --no-fund --silent
node page.test.mjs
