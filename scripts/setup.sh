#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine of this kind lacks. Idempotent:
# each step is skipped when its tool is already there.
#
#   scripts/setup.sh build   what building the workspace needs: protoc (for
#                            the etcd client) and the wasm32 target (for the
#                            policy module embedded in the flocker binary)
#   scripts/setup.sh         everything the tests need besides: etcd,
#                            Go, Node and npm, wasm-bindgen-cli, Python's wasmtime and pytest,
#                            and podman, runc and busybox-static for the proxy's
#                            end-to-end test (scripts/podman-servers.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-all}

apt_install() {
  [ $# -gt 0 ] || return 0
  echo "setup: apt-get install $*"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

need_apt=()
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
if [ "$mode" = all ]; then
  command -v etcd >/dev/null || need_apt+=(etcd-server)
  command -v etcdctl >/dev/null || need_apt+=(etcd-client)
  command -v go >/dev/null || need_apt+=(golang-go)
  # The npm package's tests (scripts/test-wasm.sh): Node runs them, npm packs
  # and installs it and fetches its one devDependency, typescript.
  command -v node >/dev/null || need_apt+=(nodejs)
  command -v npm >/dev/null || need_apt+=(npm)
  # podman depends on `crun | runc` and gets crun, which cannot run on this
  # kind of machine (hybrid cgroups): name runc. The test images are a
  # busybox rootfs, which must be static (no libc in it).
  command -v podman >/dev/null || need_apt+=(podman)
  command -v runc >/dev/null || need_apt+=(runc)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need_apt+=(busybox-static)
  # The TLS tests make their certificates with openssl and talk with curl.
  command -v openssl >/dev/null || need_apt+=(openssl)
  command -v curl >/dev/null || need_apt+=(curl)
  # A registry on loopback, for the pull the CLI makes after a 404 on create.
  command -v docker-registry >/dev/null || need_apt+=(docker-registry)
fi
apt_install "${need_apt[@]}"

rustup target list --installed | grep -qx wasm32-unknown-unknown \
  || rustup target add wasm32-unknown-unknown

[ "$mode" = build ] && exit 0

# wasm-bindgen-cli must match the wasm-bindgen crate exactly. (Not --locked:
# its lock file pins a webpki-roots release the registry no longer serves.)
wbg_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " ${wbg_version}\$"; then
  echo "setup: cargo install wasm-bindgen-cli ${wbg_version} (about 6 minutes)"
  cargo install wasm-bindgen-cli --version "${wbg_version}" --quiet
fi

# The Go binding needs Go >= 1.25 (wazero v1.12.0; ReverseProxy's
# half-close for attach) and wazero from the Go module proxy. Prefer
# /usr/local/go when it is there; an older go (Debian's golang-go 1.19)
# fetches the toolchain go.mod names (GOTOOLCHAIN=auto, the default) on the
# first `go` command below. The module cache then holds the toolchain and
# wazero, so the tests run offline (GOPROXY=off in scripts/test-host.sh).
# GOPROXY is whatever the machine's `go env` says; nothing is overridden.
if [ -x /usr/local/go/bin/go ]; then export PATH=/usr/local/go/bin:$PATH; fi
(cd bindings/go && go mod download)
(cd examples/go-proxy && go mod download)

python3 -c 'import wasmtime, pytest' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check wasmtime pytest
