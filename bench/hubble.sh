#!/usr/bin/env bash
# Hubble's cost and speed: two 2-node labs (tunnel mode, one pod per node) side by side, one
# with Hubble on (the default aggregation) and one started with --enable-hubble=false;
# cross-node TCP RR and CRR measured on both, alternating (ABBA), several repetitions, with
# the agents' CPU time (utime+stime from /proc) during each CRR run. Then flows decoded and
# filtered per second on one core (the hubble crate's `flow_throughput` bench binary).
#
# Usage (as root, from anywhere):
#   bench/hubble.sh [--reps N] [--no-build] [--write-docs]
#
# Everything it creates — labs `hbon` and `hboff` (namespaces cilab-hbon-*, cilab-hboff-*)
# and the servers it starts — is removed on exit, also on failure or Ctrl-C. Output: a
# Markdown section on stdout; with --write-docs it also replaces that section in
# docs/benchmarks.md (between the hubble markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/hubble.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/hubble.sh -->'

REPS=5
BUILD=1
WRITE_DOCS=0
RR_SECS=3
CRR_SECS=5
TARGET_RATIO=0.95
PORT=7000
LABS=(hbon hboff)

usage() { sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

COMMAND_LINE="bench/hubble.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --reps) REPS="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"

SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-hubble.XXXXXX)"
# shellcheck disable=SC2317 # run by the traps install_traps sets
cleanup() {
    local rc=$? lab
    set +e
    trap - EXIT INT TERM
    stop_servers
    for lab in "${LABS[@]}"; do
        [[ -e /run/cilium-lab/$lab/state.json ]] && "$LAB_BIN" down --name "$lab" >/dev/null 2>&1
    done
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

require_binaries "$BUILD" "$LAB_BIN" "$NETBENCH" "$BIN/cilium-agent" "$BIN/hubble-relay" "$BIN/hubble"
require_bpf_stats_off
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

declare -A CLIENT_NS SERVER_IP AGENTS RR CRR CPU
for lab in "${LABS[@]}"; do
    [[ -e /run/cilium-lab/$lab/state.json ]] && "$LAB_BIN" down --name "$lab" >/dev/null
    extra=()
    [[ $lab == hboff ]] && extra=(--agent-arg=--enable-hubble=false)
    log "$lab: bringing up 2 nodes ${extra[*]}"
    "$LAB_BIN" up --name "$lab" --nodes 2 "${extra[@]}" >/dev/null
    "$LAB_BIN" pod add --name "$lab" --node node1 client >/dev/null
    "$LAB_BIN" pod add --name "$lab" --node node2 server >/dev/null
    pods="$("$LAB_BIN" pod list --name "$lab" -o json)"
    CLIENT_NS[$lab]="$(jq -r '.[] | select(.name=="client") | .netns' <<<"$pods")"
    server_ns="$(jq -r '.[] | select(.name=="server") | .netns' <<<"$pods")"
    SERVER_IP[$lab]="$(jq -r '.[] | select(.name=="server") | .ip' <<<"$pods")"
    AGENTS[$lab]="$(jq -r '[.nodes[].agent_pid] | join(" ")' "/run/cilium-lab/$lab/state.json")"
    in_ns "${CLIENT_NS[$lab]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    in_ns "$server_ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    start_server "$server_ns" taskset -c 0 "$NETBENCH" server --port "$PORT"
    wait_listen "$server_ns" "$PORT"
    RR[$lab]="" CRR[$lab]="" CPU[$lab]=""
done

# Agent CPU seconds (both agents of a lab) so far.
agent_cpu() {
    local pid tick total=0
    tick="$(getconf CLK_TCK)"
    for pid in ${AGENTS[$1]}; do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
    done
    awk -v t="$total" -v k="$tick" 'BEGIN {printf "%.3f", t / k}'
}

for ((rep = 1; rep <= REPS; rep++)); do
    for side in $(order "$rep"); do
        lab=hbon
        [[ $side == base ]] && lab=hboff
        out="$(netbench_run rr "${CLIENT_NS[$lab]}" "${SERVER_IP[$lab]}:$PORT" "$RR_SECS")"
        RR[$lab]+="$(jq -r .transactions_per_sec <<<"$out") "
        before="$(agent_cpu "$lab")"
        out="$(netbench_run crr "${CLIENT_NS[$lab]}" "${SERVER_IP[$lab]}:$PORT" "$CRR_SECS")"
        after="$(agent_cpu "$lab")"
        CRR[$lab]+="$(jq -r .connections_per_sec <<<"$out") "
        CPU[$lab]+="$(awk -v a="$before" -v b="$after" -v s="$CRR_SECS" 'BEGIN {printf "%.2f", 100 * (b - a) / s}') "
        log "rep $rep $lab: rr, crr and agent CPU measured"
    done
done
FLOWS_SEEN="$("$BIN/hubble" --server "unix:///run/cilium-lab/hbon/relay/hubble-relay.sock" status | awk -F': ' '/Current/ {print $2}')"

log "decoding and filtering throughput (one core)"
(cd "$ROOT" && cargo build --release -p cilium-hubble --bin flow_throughput --quiet)
THROUGHPUT="$(taskset -c 1 "$BIN/flow_throughput")"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

REPORT="$WORK/report.md"
{
    echo "$BEGIN_MARK"
    echo "### Hubble on vs off (cross-node, tunnel mode)"
    echo
    echo "\`$COMMAND_LINE\` on $(date -u +%Y-%m-%d), $(machine_line); load average $LOAD_START at the start,"
    echo "$LOAD_END at the end (the machine is shared). Two 2-node labs side by side, one pod per node;"
    echo "\"off\" is the same lab with \`--agent-arg=--enable-hubble=false\`. $REPS repetitions, alternating (ABBA);"
    echo "netbench rr ${RR_SECS} s and crr ${CRR_SECS} s pinned to vCPU 0; agent CPU = utime+stime of both agents during each CRR run."
    echo
    echo "| Test | Hubble on | Hubble off | on/off | Target | Met |"
    echo "|---|---|---|---|---|---|"
    row "TCP RR (transactions/s)" "k/s" 1e3 2 "≥ 0.95" ratio "${RR[hbon]}" "${RR[hboff]}"
    row "TCP CRR (connections/s)" "k/s" 1e3 2 "≥ 0.95" ratio "${CRR[hbon]}" "${CRR[hboff]}"
    row "Agent CPU during CRR (both agents, % of one vCPU)" "%" 1 2 "—" none "${CPU[hbon]}" "${CPU[hboff]}"
    echo
    echo "Flows held by the relay after the runs (Current/Max, both nodes): $FLOWS_SEEN."
    echo
    echo "#### Flow decoding and filtering on one core"
    echo
    echo "$THROUGHPUT"
    echo "$END_MARK"
} >"$REPORT"
cat "$REPORT"
((WRITE_DOCS)) && write_docs_section "$DOC" "$REPORT" "$BEGIN_MARK" "$END_MARK"
exit 0
