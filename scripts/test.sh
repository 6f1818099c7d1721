#!/usr/bin/env bash
# The whole test suite: unit tests, BPF_PROG_TEST_RUN datapath tests, and privileged
# end-to-end tests over real labs (network namespaces, agents, CNI calls, podman).
# Run as root on Debian 12: installs its own prerequisites first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Build every binary first: the end-to-end tests drive cilium-lab, cilium-agent, cilium-cni
# and cilium from the same target directory.
cargo build --workspace --bins
# --all-features turns on `privileged-tests`: those tests run here and fail (never skip) when
# they cannot do their job.
cargo test --workspace --all-features "$@"
