#!/usr/bin/env bash
# Headless Chromium from Debian's packages, for the browser tests (driven by Playwright
# for Python, which requirements-dev.txt installs; it never downloads a browser of its own).
set -euo pipefail
if [[ ! -x /usr/bin/chromium ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends chromium \
        || { apt-get update && apt-get install -y --no-install-recommends chromium; }
fi
/usr/bin/chromium --version
