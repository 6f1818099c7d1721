#!/usr/bin/env bash
# The main job: build, bring up a local lab cluster, run the demo, leave the lab up.
# Run as root on Debian 12: installs its own prerequisites first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --workspace --bins
exec ./target/release/cilium-lab demo "$@"
