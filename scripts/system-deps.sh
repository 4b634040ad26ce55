#!/usr/bin/env bash
# Debian packages the test suite drives for real: an OCI registry (docker-registry), image tools
# (umoci, skopeo), htpasswd for Basic auth, openssl for certificates, rpm for a real rpmdb, zstd, and
# wrk (the admission webhook's load tests), chromium (the HTML report's browser tests) and nodejs (MITRE's
# inspecjs parser reads the HDF output).
# Installs only what is missing; needs root (CI runs as root) and the Debian mirror. Without root or
# apt it says what is missing and continues: the tests that need a tool skip with that reason.
set -euo pipefail
PACKAGES=(docker-registry umoci skopeo apache2-utils openssl rpm zstd wrk chromium nodejs)
COMMANDS=(docker-registry umoci skopeo htpasswd openssl rpmbuild zstd wrk chromium node)
missing=()
for i in "${!PACKAGES[@]}"; do
  command -v "${COMMANDS[$i]}" >/dev/null 2>&1 || missing+=("${PACKAGES[$i]}")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing[*]} (install them as root with apt-get; their tests will skip)" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
