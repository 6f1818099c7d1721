#!/usr/bin/env bash
# Where our datapath's time goes, per BPF program: a two-node lab (`cilium-lab up --nodes 2`),
# a client pod on node1 and a server pod on node2, `netbench rr` and `netbench crr` between them
# (both ends on vCPU 0, as in bench/cross-node.sh), with the kernel's per-program run-time
# statistics (kernel.bpf_stats_enabled) switched on for each run only. Prints, per test and
# program, the runs and the mean run time, and the programs' total time per transaction (RR)
# or per connection (CRR). A diagnostic, not a comparison: the statistics themselves add a
# clock read to every run, so the absolute times read a little high.
#
# Usage (as root, from anywhere):
#   bench/prog-cost.sh [--routing tunnel|native] [--seconds N] [--lab NAME] [--no-build]
#
# It removes the lab `pcost` (namespaces cilab-pcost-*) and the servers it starts on exit, also
# on failure or Ctrl-C, and switches the statistics off again.

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUTING=tunnel
SECONDS_PER_TEST=5
LAB=pcost
BUILD=1
PORT=5001

usage() {
    sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

while (($#)); do
    case "$1" in
    --routing) ROUTING="${2:?$1 needs a value}"; shift 2 ;;
    --seconds) SECONDS_PER_TEST="${2:?$1 needs a value}"; shift 2 ;;
    --lab) LAB="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $ROUTING == tunnel || $ROUTING == native ]] || die "--routing wants tunnel or native"
[[ $SECONDS_PER_TEST =~ ^[1-9][0-9]*$ ]] || die "--seconds wants a positive integer"
for tool in bpftool jq taskset ip awk sysctl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs it)"
done

LAB_UP=0
SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-prog-cost.XXXXXX)"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    sysctl -qw kernel.bpf_stats_enabled=0
    stop_servers
    if ((LAB_UP)); then
        "$LAB_BIN" down --name "$LAB" >/dev/null 2>&1 || log "cleanup: cilium-lab down failed"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

require_binaries "$BUILD" "$LAB_BIN" "$NETBENCH" "$BIN/cilium-agent" "$BIN/cilium-cni"

remove_leftover_lab "$LAB" '^netbench$'

log "bringing up lab $LAB ($ROUTING routing, 2 nodes)"
LAB_UP=1
"$LAB_BIN" up --name "$LAB" --nodes 2 --routing "$ROUTING" >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node1 pcost-client >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node2 pcost-server >/dev/null
PODS_JSON="$("$LAB_BIN" pod list --name "$LAB" -o json)"
pod_field() { jq -r --arg p "$1" --arg f "$2" '.[] | select(.name == $p) | .[$f]' <<<"$PODS_JSON"; }
CLIENT_NS="$(pod_field pcost-client netns)"
SERVER_NS="$(pod_field pcost-server netns)"
SERVER_IP="$(pod_field pcost-server ip)"

for ns in "$CLIENT_NS" "$SERVER_NS"; do
    in_ns "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
done
start_server "$SERVER_NS" taskset -c 0 "$NETBENCH" server --port "$PORT"
wait_listen "$SERVER_NS" "$PORT"
in_ns "$CLIENT_NS" ping -c 1 -W 2 "$SERVER_IP" >/dev/null || die "the server pod does not answer ping"

# prog_stats: "id name run_time_ns run_cnt" of our programs, sorted by id.
prog_stats() {
    bpftool prog show -j | jq -r '.[] | select(.name | test("^(cil_|handle_policy|ipv4_|lb4_)")) |
        "\(.id) \(.name) \(.run_time_ns // 0) \(.run_cnt // 0)"' | sort -n
}

echo "### Per-program cost, $ROUTING routing"
echo
echo "- Command: \`bench/prog-cost.sh --routing $ROUTING --seconds $SECONDS_PER_TEST\`; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- Load average (1/5/15 min) at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for test in rr crr; do
    sysctl -qw kernel.bpf_stats_enabled=1
    prog_stats >"$WORK/before"
    out="$(in_ns "$CLIENT_NS" taskset -c 0 "$NETBENCH" "$test" --addr "$SERVER_IP:$PORT" \
        --duration "$SECONDS_PER_TEST")" || die "netbench $test failed"
    prog_stats >"$WORK/after"
    sysctl -qw kernel.bpf_stats_enabled=0
    if [[ $test == rr ]]; then
        unit=transaction count="$(jq -r .transactions <<<"$out")" rate="$(jq -r '.transactions_per_sec | floor' <<<"$out")/s"
    else
        unit=connection count="$(jq -r .connections <<<"$out")" rate="$(jq -r '.connections_per_sec | floor' <<<"$out")/s"
    fi
    echo
    echo "#### netbench $test: $rate, $count ${unit}s"
    echo
    echo "| Program (id) | Runs per $unit | ns per run | ns per $unit |"
    echo "|---|---|---|---|"
    join <(cat "$WORK/before") <(cat "$WORK/after") | awk -v n="$count" '
        { runs = $7 - $4; ns = $6 - $3 }
        runs > 0 { printf "| %s (%s) | %.1f | %.0f | %.0f |\n", $2, $1, runs / n, ns / runs, ns / n; total += ns }
        END { printf "| **all** | | | **%.0f** |\n", total / n }'
done
