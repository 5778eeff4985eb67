#!/usr/bin/env bash
# Debian packages the tests use: promtool (prometheus) to unit-test the chart's alert rules,
# buildah and debootstrap to build and run the container image, chromium for the annotator page's
# browser test (Playwright drives /usr/bin/chromium; it never downloads its own). Installs only what is missing.
set -euo pipefail
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v chromium >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && { echo "test tools: present"; exit 0; }
if [ "$(id -u)" != 0 ]; then
  echo "error: the tests need ${missing[*]}; install them as root: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "test tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
