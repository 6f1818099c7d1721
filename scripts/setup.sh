#!/usr/bin/env bash
# Installs what building, running and testing the project needs on Debian 12 (idempotent).
# Run as root. Only apt packages are installed; the Rust toolchain must already be present.
set -euo pipefail

packages=(
  # build: eBPF C → BPF objects, Rust crates with C parts
  clang llvm libbpf-dev linux-libc-dev gcc make pkg-config protobuf-compiler libprotobuf-dev
  # run: netlink tools, bpffs inspection
  iproute2 bpftool procps
  # lab, tests, benchmarks
  etcd-server iperf3 tcpdump jq iputils-ping
  # a second, real CNI client for the tests
  podman containernetworking-plugins runc busybox-static
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: must run as root (installs packages, needs BPF and network namespaces)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup.sh: cargo not found; install the Rust toolchain (rustup) first" >&2; exit 1; }

# bpffs for the agents' pins (each agent uses its own directory below it).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
# Network namespaces live here.
mkdir -p /run/netns
