#!/usr/bin/env bash
# Sets up a fresh Debian machine for the tests: the Debian packages they
# drive (real gRPC peers, a real browser, curl) and the pinned npm packages,
# which bring their own Node 24.
set -euo pipefail
cd "$(dirname "$0")/.."

debian_packages=(
  curl openssl                                  # curl tests, throwaway TLS certificates
  python3-grpcio python3-protobuf               # the tutorial's Python client and server
  protobuf-compiler protobuf-compiler-grpc      # protoc + grpc_python_plugin for their stubs
  chromium                                      # browser tests
  haproxy                                       # deploy/haproxy/haproxy.cfg in front of three instances
)

missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) == 0 ]]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
    echo "setup: cannot install ${missing[*]} (not root, no sudo); the tests that need them will skip locally" >&2
    missing=()
  fi
  if ((${#missing[@]} > 0)); then
    echo "setup: installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

npm ci --no-audit --no-fund
