#!/usr/bin/env bash
# Pod-to-pod benchmark on one lab node: our eBPF datapath (bpf_redirect_peer between two pods
# of one node) against a plain-kernel baseline (veth pairs + IPv4 forwarding in a router
# namespace, no BPF), measured in the same run, alternating, several repetitions; plus the
# CNI plugin's ADD latency and the agent's memory.
#
# Usage (as root, from anywhere):
#   bench/pod-to-pod.sh [--reps N] [--lab NAME] [--cni-pods N] [--no-build] [--write-docs]
#
# Everything it creates — the lab `bench` (namespaces cilab-bench-*), the baseline namespaces
# cilb-*, the CNI test namespaces cilb-cni-*, the servers it starts — is removed on exit, also
# on failure or Ctrl-C. It removes leftovers of an interrupted earlier run before starting.
# Output: a Markdown section on stdout; with --write-docs it also replaces that section in
# docs/benchmarks.md (between the pod-to-pod markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CNI_BIN="$BIN/cilium-cni"
DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/pod-to-pod.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/pod-to-pod.sh -->'

REPS=5
LAB=bench
CNI_PODS=50
BUILD=1
WRITE_DOCS=0
IPERF_SECS=5
RR_SECS=3
CRR_SECS=3
# Targets: ours/baseline for throughput and RR, absolute p99 for CNI ADD.
TARGET_RATIO=0.95
TARGET_CNI_P99_MS=100

IPERF_PORT=5201
NETBENCH_PORT=7000

# Baseline: a router namespace and two pod namespaces, addressed like a lab node.
BL_NODE=cilb-node
BL_POD_A=cilb-pod-a
BL_POD_B=cilb-pod-b
BL_GW=10.0.9.1
BL_IP_A=10.0.9.2
BL_IP_B=10.0.9.3
BL_CNI_PREFIX=cilb-cni-

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

COMMAND_LINE="bench/pod-to-pod.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --reps) REPS="${2:?$1 needs a value}"; shift 2 ;;
    --lab) LAB="${2:?$1 needs a value}"; shift 2 ;;
    --cni-pods) CNI_PODS="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
[[ $CNI_PODS =~ ^[1-9][0-9]*$ && $CNI_PODS -le 200 ]] || die "--cni-pods wants 1..200"
for tool in iperf3 jq taskset nsenter ss ip awk sort; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------- state and cleanup

LAB_UP=0
SERVER_PIDS=()
CNI_ADDED=()      # "netns container-id" of every pod the plugin has wired
NODE_NS=""
CNI_STDIN=""
WORK="$(mktemp -d /tmp/cilb-pod-to-pod.XXXXXX)"

bl_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^(${BL_NODE}|${BL_POD_A}|${BL_POD_B}|${BL_CNI_PREFIX}[0-9]+)$" || true
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_servers
    if ((${#CNI_ADDED[@]})); then
        log "cleanup: CNI DEL for ${#CNI_ADDED[@]} pods"
        for entry in "${CNI_ADDED[@]}"; do
            cni_call DEL "${entry% *}" "${entry#* }" >/dev/null 2>&1
        done
    fi
    for ns in $(bl_namespaces); do ip netns delete "$ns"; done
    if ((LAB_UP)); then
        "$LAB_BIN" down --name "$LAB" >/dev/null 2>&1 || log "cleanup: cilium-lab down failed"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

# ---------------------------------------------------------------- setup

require_binaries "$BUILD" "$LAB_BIN" "$NETBENCH" "$CNI_BIN" "$BIN/cilium-agent"
require_bpf_stats_off

START_EPOCH=$EPOCHREALTIME
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

for ns in $(bl_namespaces); do
    kill_in_ns "$ns" '^(iperf3|netbench)$'
    log "removing leftover namespace $ns"
    ip netns delete "$ns"
done
remove_leftover_lab "$LAB" '^(iperf3|netbench)$'

log "bringing up lab $LAB"
LAB_UP=1
"$LAB_BIN" up --name "$LAB" >/dev/null
STATE="/run/cilium-lab/$LAB/state.json"
NODE_NS="$(jq -r '.nodes[0].netns' "$STATE")"
AGENT_PID="$(jq -r '.nodes[0].agent_pid' "$STATE")"
CONFLIST="$(jq -r '.nodes[0].cni_conflist' "$STATE")"
[[ "$(cat "/proc/$AGENT_PID/comm")" == cilium-agent ]] || die "pid $AGENT_PID is not cilium-agent"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$AGENT_PID/status"; }
RSS_0=$(rss_kib)

"$LAB_BIN" pod add --name "$LAB" --node node1 bench-client >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node1 bench-server >/dev/null
PODS_JSON="$("$LAB_BIN" pod list --name "$LAB" -o json)"
OURS_CLIENT_NS="$(jq -r '.[] | select(.name=="bench-client") | .netns' <<<"$PODS_JSON")"
OURS_SERVER_NS="$(jq -r '.[] | select(.name=="bench-server") | .netns' <<<"$PODS_JSON")"
OURS_SERVER_IP="$(jq -r '.[] | select(.name=="bench-server") | .ip' <<<"$PODS_JSON")"

log "building the baseline (veth + kernel routing) in ${BL_NODE}, ${BL_POD_A}, ${BL_POD_B}"
ip netns add "$BL_NODE"
in_ns "$BL_NODE" ip link set lo up
in_ns "$BL_NODE" sysctl -qw net.ipv4.ip_forward=1
# The gateway address lives on a veth pair cilb_host/cilb_net, as ours lives on
# cilium_host/cilium_net; the kernel answers ARP for a local address on every interface.
in_ns "$BL_NODE" ip link add cilb_host type veth peer name cilb_net
in_ns "$BL_NODE" ip addr add "$BL_GW/32" dev cilb_host
in_ns "$BL_NODE" ip link set cilb_net up
in_ns "$BL_NODE" ip link set cilb_host up
for pod in a b; do
    ns=$BL_POD_A ip=$BL_IP_A
    [[ $pod == b ]] && ns=$BL_POD_B ip=$BL_IP_B
    ip netns add "$ns"
    in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    in_ns "$BL_NODE" ip link add "cilb-$pod" mtu 1500 type veth peer name eth0 mtu 1500 netns "$ns"
    in_ns "$ns" ip link set lo up
    in_ns "$ns" ip link set eth0 up
    in_ns "$ns" ip addr add "$ip/32" dev eth0
    in_ns "$ns" ip route add "$BL_GW/32" dev eth0 scope link
    in_ns "$ns" ip route add default via "$BL_GW" dev eth0
    in_ns "$BL_NODE" ip link set "cilb-$pod" up
    in_ns "$BL_NODE" ip route add "$ip/32" dev "cilb-$pod" scope link
done

# Both sides: same client/server roles, same sysctls.
for ns in "$OURS_CLIENT_NS" "$OURS_SERVER_NS" "$BL_POD_A" "$BL_POD_B"; do
    in_ns "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
done
declare -A CLIENT_NS=([ours]="$OURS_CLIENT_NS" [base]="$BL_POD_A")
declare -A SERVER_NS=([ours]="$OURS_SERVER_NS" [base]="$BL_POD_B")
declare -A SERVER_IP=([ours]="$OURS_SERVER_IP" [base]="$BL_IP_B")

for side in ours base; do
    start_server "${SERVER_NS[$side]}" taskset -c 1 iperf3 -s -p "$IPERF_PORT"
    start_server "${SERVER_NS[$side]}" taskset -c 0 "$NETBENCH" server --port "$NETBENCH_PORT"
    wait_listen "${SERVER_NS[$side]}" "$IPERF_PORT"
    wait_listen "${SERVER_NS[$side]}" "$NETBENCH_PORT"
    in_ns "${CLIENT_NS[$side]}" ping -c 1 -W 2 "${SERVER_IP[$side]}" >/dev/null ||
        die "$side: ${SERVER_IP[$side]} does not answer ping"
done
METRICS_BEFORE="$("$LAB_BIN" node exec --name "$LAB" node1 -- "$BIN/cilium" bpf metrics list -o json 2>/dev/null || true)"

# ---------------------------------------------------------------- traffic, alternating

declare -A TPUT RR_TPS RR_P50 RR_P99 CRR_CPS CRR_P50 CRR_IRQ
for side in ours base; do
    TPUT[$side]="" RR_TPS[$side]="" RR_P50[$side]="" RR_P99[$side]=""
    CRR_CPS[$side]="" CRR_P50[$side]="" CRR_IRQ[$side]=""
done

run_iperf() {
    local side="$1" out
    out="$(timeout $((IPERF_SECS + 20)) ip netns exec "${CLIENT_NS[$side]}" taskset -c 0 \
        iperf3 -c "${SERVER_IP[$side]}" -p "$IPERF_PORT" -t "$IPERF_SECS" -J)" ||
        die "$side: iperf3 failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null)"
    TPUT[$side]+="$(jq -r '.end.sum_received.bits_per_second' <<<"$out") "
}
run_rr() {
    local side="$1" out
    out="$(timeout $((RR_SECS + 20)) ip netns exec "${CLIENT_NS[$side]}" taskset -c 0 \
        "$NETBENCH" rr --addr "${SERVER_IP[$side]}:$NETBENCH_PORT" --duration "$RR_SECS")" ||
        die "$side: netbench rr failed"
    RR_TPS[$side]+="$(jq -r .transactions_per_sec <<<"$out") "
    RR_P50[$side]+="$(jq -r .p50_us <<<"$out") "
    RR_P99[$side]+="$(jq -r .p99_us <<<"$out") "
}
run_crr() {
    local side="$1" out irq0 irq1
    irq0=$(wakeup_irqs)
    out="$(timeout $((CRR_SECS + 20)) ip netns exec "${CLIENT_NS[$side]}" taskset -c 0 \
        "$NETBENCH" crr --addr "${SERVER_IP[$side]}:$NETBENCH_PORT" --duration "$CRR_SECS")" ||
        die "$side: netbench crr failed"
    irq1=$(wakeup_irqs)
    CRR_CPS[$side]+="$(jq -r .connections_per_sec <<<"$out") "
    CRR_P50[$side]+="$(jq -r .p50_us <<<"$out") "
    CRR_IRQ[$side]+="$(awk -v d=$((irq1 - irq0)) -v c="$(jq -r .connections <<<"$out")" 'BEGIN {print d / c}') "
}

for test in iperf rr crr; do
    for ((rep = 1; rep <= REPS; rep++)); do
        for side in $(order "$rep"); do
            log "$test rep $rep/$REPS: $side"
            "run_$test" "$side"
        done
    done
done
METRICS_AFTER="$("$LAB_BIN" node exec --name "$LAB" node1 -- "$BIN/cilium" bpf metrics list -o json 2>/dev/null || true)"

stop_servers
"$LAB_BIN" pod del --name "$LAB" bench-client >/dev/null
"$LAB_BIN" pod del --name "$LAB" bench-server >/dev/null

# ---------------------------------------------------------------- CNI ADD latency

# The plugin's config, as a runtime sends it: the cilium-cni entry of the node's conflist with
# the list's cniVersion and name.
CNI_STDIN="$(jq -c '.cniVersion as $v | .name as $n
    | .plugins[] | select(.type == "cilium-cni") | . + {cniVersion: $v, name: $n}' "$CONFLIST")"
[[ -n $CNI_STDIN ]] || die "no cilium-cni plugin in $CONFLIST"

# cni_call COMMAND NETNS CONTAINER_ID: one plugin call from the node namespace (used by the
# cleanup; the timed calls run in one shell inside the node namespace, below).
cni_call() {
    CNI_COMMAND="$1" CNI_CONTAINERID="$3" CNI_NETNS="/run/netns/$2" CNI_IFNAME=eth0 \
        CNI_PATH="$BIN" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$LAB;K8S_POD_NAME=$2" \
        nsenter --net="/run/netns/$NODE_NS" -- "$CNI_BIN" <<<"$CNI_STDIN"
}

log "CNI: creating $CNI_PODS pod namespaces"
: >"$WORK/cni-pods"
for ((i = 1; i <= CNI_PODS; i++)); do
    ns="$(printf '%s%03d' "$BL_CNI_PREFIX" "$i")"
    ip netns add "$ns"
    echo "$ns $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >>"$WORK/cni-pods"
done

# timed_cni COMMAND: runs COMMAND for every pod in $WORK/cni-pods, in one shell that has
# entered the node namespace once, and prints "netns container-id microseconds" per call.
# The clock brackets exactly what a runtime waits for: fork, exec, the plugin's work, exit.
timed_cni() {
    # shellcheck disable=SC2016 # the inner script expands its own variables
    nsenter --net="/run/netns/$NODE_NS" -- bash -c '
        set -u
        cmd="$1" pods="$2" bin="$3" path="$4" lab="$5" stdin="$6"
        while read -r ns id; do
            t0=$EPOCHREALTIME
            CNI_COMMAND="$cmd" CNI_CONTAINERID="$id" CNI_NETNS="/run/netns/$ns" CNI_IFNAME=eth0 \
                CNI_PATH="$path" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=$lab;K8S_POD_NAME=$ns" \
                "$bin" <<<"$stdin" >"/dev/null" 2>"$pods.err" || { echo "FAIL $ns $id"; cat "$pods.err" >&2; exit 1; }
            t1=$EPOCHREALTIME
            echo "$ns $id $(( (${t1/./} - ${t0/./}) ))"
        done <"$pods"
    ' timed-cni "$1" "$WORK/cni-pods" "$CNI_BIN" "$BIN" "$LAB" "$CNI_STDIN"
}

log "CNI: $CNI_PODS x ADD"
while read -r ns id us; do
    if [[ $ns == FAIL ]]; then
        CNI_ADDED+=("$id $us")
        die "CNI ADD failed for $id"
    fi
    CNI_ADDED+=("$ns $id")
    ADD_US+=("$us")
done < <(timed_cni ADD)
((${#CNI_ADDED[@]} == CNI_PODS)) || die "CNI ADD stopped after ${#CNI_ADDED[@]} pods"
ENDPOINTS="$("$LAB_BIN" node exec --name "$LAB" node1 -- "$BIN/cilium" endpoint list -o json | jq length)"
RSS_N=$(rss_kib)

log "CNI: $CNI_PODS x DEL"
DEL_US=()
while read -r ns id us; do
    [[ $ns == FAIL ]] && die "CNI DEL failed for $id"
    DEL_US+=("$us")
done < <(timed_cni DEL)
CNI_ADDED=()
RSS_AFTER=$(rss_kib)

END_EPOCH=$EPOCHREALTIME
WALL_S="$(awk -v a="$START_EPOCH" -v b="$END_EPOCH" 'BEGIN {printf "%.0f", b-a}')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report

ADD_P50="$(percentile 50 "${ADD_US[@]}")" ADD_P99="$(percentile 99 "${ADD_US[@]}")"
DEL_P50="$(percentile 50 "${DEL_US[@]}")" DEL_P99="$(percentile 99 "${DEL_US[@]}")"
ADD_MET="$(awk -v v="$ADD_P99" -v t="$TARGET_CNI_P99_MS" 'BEGIN {print (v/1000<t) ? "**yes**" : "**no**"}')"

metric_sum() { jq -r --arg d "$2" '[.[]? | select((.reason // "") == "Success" and ((.direction // "") | ascii_upcase) == $d) | .packets] | add // 0' <<<"$1" 2>/dev/null || echo 0; }
FWD_PKTS=$(($(metric_sum "$METRICS_AFTER" EGRESS) - $(metric_sum "$METRICS_BEFORE" EGRESS)))

CPU_MODEL="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
VIRT="bare metal"
grep -qw hypervisor /proc/cpuinfo && VIRT="VM"
REPORT="$WORK/report.md"
{
    echo "$BEGIN_MARK"
    echo
    echo "### Pod to pod on one node: results"
    echo
    echo "- Command: \`$COMMAND_LINE\` (release build), wall time ${WALL_S} s"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) vCPU $VIRT ($CPU_MODEL), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END"
    echo "- Each traffic row: median of $REPS repetitions per side (min–max in brackets), ours and"
    echo "  the baseline alternating (ABBA order); iperf3 ${IPERF_SECS} s, netbench rr/crr ${RR_SECS}/${CRR_SECS} s per repetition."
    echo "- Our datapath handled $FWD_PKTS packets (\`cilium bpf metrics list\`, Success/EGRESS delta) during the traffic rows."
    echo
    echo "| Metric | Ours | Baseline (veth + routing) | Ours/Baseline | Target | Met |"
    echo "|---|---|---|---|---|---|"
    row "TCP throughput, 1 stream (iperf3)" "Gbit/s" 1e9 2 "≥ 0.95" ratio "${TPUT[ours]}" "${TPUT[base]}"
    row "TCP RR, 1 byte (transactions/s)" "k/s" 1e3 1 "≥ 0.95" ratio "${RR_TPS[ours]}" "${RR_TPS[base]}"
    row "TCP RR latency p50" "µs" 1 2 "—" info "${RR_P50[ours]}" "${RR_P50[base]}"
    row "TCP RR latency p99" "µs" 1 2 "—" info "${RR_P99[ours]}" "${RR_P99[base]}"
    row "TCP CRR (connections/s)" "k/s" 1e3 1 "—" info "${CRR_CPS[ours]}" "${CRR_CPS[base]}"
    row "TCP CRR latency p50" "µs" 1 1 "—" info "${CRR_P50[ours]}" "${CRR_P50[base]}"
    row "Wake-up interrupts per CRR connection (diagnostic)" "" 1 2 "—" none "${CRR_IRQ[ours]}" "${CRR_IRQ[base]}"
    echo
    echo "| Metric | Value | Target | Met |"
    echo "|---|---|---|---|"
    echo "| CNI ADD latency p50 / p99 ($CNI_PODS pods, sequential) | $(fmt "$ADD_P50" 1 1000) ms / $(fmt "$ADD_P99" 1 1000) ms | p99 < ${TARGET_CNI_P99_MS} ms | $ADD_MET |"
    echo "| CNI DEL latency p50 / p99 ($CNI_PODS pods, sequential) | $(fmt "$DEL_P50" 1 1000) ms / $(fmt "$DEL_P99" 1 1000) ms | — | — |"
    echo "| Agent RSS, 0 pods (fresh agent) | $(fmt "$RSS_0" 1 1024) MiB | — | — |"
    echo "| Agent RSS, $CNI_PODS pods ($ENDPOINTS endpoints) | $(fmt "$RSS_N" 1 1024) MiB | — | — |"
    echo "| Agent RSS, 0 pods again (after $CNI_PODS DELs) | $(fmt "$RSS_AFTER" 1 1024) MiB | — | — |"
    echo
    echo "$END_MARK"
} >"$REPORT"
cat "$REPORT"

if ((WRITE_DOCS)); then
    mkdir -p "$(dirname "$DOC")"
    [[ -e $DOC ]] || printf '# Benchmarks\n\n%s\n%s\n' "$BEGIN_MARK" "$END_MARK" >"$DOC"
    if grep -qF "$BEGIN_MARK" "$DOC" && grep -qF "$END_MARK" "$DOC"; then
        awk -v begin="$BEGIN_MARK" -v end="$END_MARK" -v report="$REPORT" '
            $0 == begin { while ((getline line < report) > 0) print line; skip = 1; next }
            $0 == end { skip = 0; next }
            !skip { print }' "$DOC" >"$WORK/doc.md"
    else
        { cat "$DOC"; echo; cat "$REPORT"; } >"$WORK/doc.md"
    fi
    cat "$WORK/doc.md" >"$DOC"
    log "wrote the results into $DOC"
fi
log "done in ${WALL_S} s"
