#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the MLflow UI end-to-end test (tests/test_e2e_ui.py):
# Debian's chromium and chromium-driver, installed when missing and the user is root.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "make test needs headless Chromium for the MLflow UI test: run 'sudo apt-get install chromium chromium-driver' (Debian/Ubuntu) and try again" >&2
  exit 2
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
