#!/usr/bin/env bash
# Cross-node pod-to-pod benchmark: two lab nodes with one pod each, in tunnel mode (our eBPF
# datapath encapsulating into an external VXLAN device) against a plain kernel VXLAN overlay
# with routing, and in native mode (our datapath handing packets to the node's stack) against
# plain routing over the underlay; baselines without BPF, measured in the same run,
# alternating, several repetitions. Then the time from `cilium-lab up --nodes 3` until the
# pods of all three nodes reach each other.
#
# Usage (as root, from anywhere):
#   bench/cross-node.sh [--reps N] [--reach-runs N] [--lab NAME] [--no-build] [--write-docs]
#
# Everything it creates — the lab `benchx` (namespaces cilab-benchx-*), the baseline
# namespaces cilb-x-*, the servers it starts — is removed on exit, also on failure or Ctrl-C.
# It removes leftovers of an interrupted earlier run before starting. Output: a Markdown
# section on stdout; with --write-docs it also replaces that section in docs/benchmarks.md
# (between the cross-node markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/cross-node.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/cross-node.sh -->'

REPS=5
REACH_RUNS=3
LAB=benchx
BUILD=1
WRITE_DOCS=0
IPERF_SECS=5
RR_SECS=3
CRR_SECS=3
TARGET_RATIO=0.95
# Bound of the reachability poll after the pods are added.
REACH_TIMEOUT_S=60

IPERF_PORT=5201
NETBENCH_PORT=7000

# Baseline: a switch, two nodes on its bridge, one pod per node — addressed like the lab, in
# other subnets. Pod CIDR of baseline node K: 10.77.K.0/24, gateway .1, pod .2.
BL_PREFIX=cilb-x-
BL_SW=${BL_PREFIX}sw
BL_UNDERLAY=192.168.77
BL_POD_NET=10.77
BL_VNI=42
VXLAN_PORT=8472

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

COMMAND_LINE="bench/cross-node.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --reps) REPS="${2:?$1 needs a value}"; shift 2 ;;
    --reach-runs) REACH_RUNS="${2:?$1 needs a value}"; shift 2 ;;
    --lab) LAB="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
[[ $REACH_RUNS =~ ^[1-9][0-9]*$ ]] || die "--reach-runs wants a positive integer"
for tool in iperf3 jq taskset ss ip bridge ping awk sort; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------- state and cleanup

LAB_UP=0
SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-cross-node.XXXXXX)"

bl_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^${BL_PREFIX}(sw|node[12]|pod[12])$" || true
}

lab_down() {
    "$LAB_BIN" down --name "$LAB" >/dev/null
    LAB_UP=0
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_servers
    for ns in $(bl_namespaces); do ip netns delete "$ns"; done
    if ((LAB_UP)); then
        "$LAB_BIN" down --name "$LAB" >/dev/null 2>&1 || log "cleanup: cilium-lab down failed"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

# ---------------------------------------------------------------- setup

require_binaries "$BUILD" "$LAB_BIN" "$NETBENCH" "$BIN/cilium-agent" "$BIN/cilium-cni" "$BIN/cilium"
require_bpf_stats_off

START_EPOCH=$EPOCHREALTIME
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

for dir in /tmp/cilb-cross-node.*; do
    [[ -d $dir && $dir != "$WORK" ]] && rm -rf "$dir"
done
for ns in $(bl_namespaces); do
    kill_in_ns "$ns" '^(iperf3|netbench)$'
    log "removing leftover namespace $ns"
    ip netns delete "$ns"
done
remove_leftover_lab "$LAB" '^(iperf3|netbench)$'

# ---------------------------------------------------------------- the baseline

# build_baseline MODE MTU: the switch cilb-x-sw with bridge br0; nodes cilb-x-node1/2 with
# eth0 192.168.77.1K/24 on it and IPv4 forwarding; pods cilb-x-pod1/2 behind a veth pair with
# the pod's IP as /32 and a default route via the node's gateway 10.77.K.1 (a local address of
# the node, on a cilb_host/cilb_net veth pair as ours has it on cilium_host). Then, per MODE:
#   tunnel: a kernel VXLAN device vx0 per node (VNI 42, UDP 8472, learning off); the remote
#           pod CIDR routed via the remote gateway on vx0 (onlink), that gateway's neighbour
#           entry pointing at the remote vx0's MAC, and an FDB entry sending that MAC to the
#           remote node's underlay IP;
#   native: the remote pod CIDR routed via the remote node's underlay IP.
build_baseline() {
    local mode="$1" mtu="$2" k o node pod mac
    ip netns add "$BL_SW"
    in_ns "$BL_SW" ip link set lo up
    in_ns "$BL_SW" ip link add br0 type bridge
    in_ns "$BL_SW" ip link set br0 up
    for k in 1 2; do
        node="${BL_PREFIX}node$k" pod="${BL_PREFIX}pod$k"
        ip netns add "$node"
        in_ns "$node" ip link set lo up
        in_ns "$node" sysctl -qw net.ipv4.ip_forward=1
        in_ns "$BL_SW" ip link add "node$k" type veth peer name eth0 netns "$node"
        in_ns "$BL_SW" ip link set "node$k" master br0 up
        in_ns "$node" ip addr add "$BL_UNDERLAY.1$k/24" dev eth0
        in_ns "$node" ip link set eth0 up
        in_ns "$node" ip link add cilb_host type veth peer name cilb_net
        in_ns "$node" ip addr add "$BL_POD_NET.$k.1/32" dev cilb_host
        in_ns "$node" ip link set cilb_net up
        in_ns "$node" ip link set cilb_host up

        ip netns add "$pod"
        in_ns "$pod" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        in_ns "$node" ip link add "cilb-pod$k" mtu "$mtu" type veth peer name eth0 mtu "$mtu" netns "$pod"
        in_ns "$pod" ip link set lo up
        in_ns "$pod" ip link set eth0 up
        in_ns "$pod" ip addr add "$BL_POD_NET.$k.2/32" dev eth0
        in_ns "$pod" ip route add "$BL_POD_NET.$k.1/32" dev eth0 scope link
        in_ns "$pod" ip route add default via "$BL_POD_NET.$k.1" dev eth0
        in_ns "$node" ip link set "cilb-pod$k" up
        in_ns "$node" ip route add "$BL_POD_NET.$k.2/32" dev "cilb-pod$k" scope link

        if [[ $mode == tunnel ]]; then
            in_ns "$node" ip link add vx0 type vxlan id "$BL_VNI" dstport "$VXLAN_PORT" \
                local "$BL_UNDERLAY.1$k" dev eth0 nolearning
            in_ns "$node" ip link set vx0 up
        fi
    done
    for k in 1 2; do
        node="${BL_PREFIX}node$k" o=$((3 - k))
        if [[ $mode == tunnel ]]; then
            mac="$(ip -n "${BL_PREFIX}node$o" -j link show vx0 | jq -r '.[0].address')"
            in_ns "$node" ip neigh add "$BL_POD_NET.$o.1" lladdr "$mac" dev vx0 nud permanent
            in_ns "$node" bridge fdb append "$mac" dev vx0 dst "$BL_UNDERLAY.1$o" self permanent
            in_ns "$node" ip route add "$BL_POD_NET.$o.0/24" via "$BL_POD_NET.$o.1" dev vx0 onlink
        else
            in_ns "$node" ip route add "$BL_POD_NET.$o.0/24" via "$BL_UNDERLAY.1$o" dev eth0
        fi
    done
}

remove_baseline() {
    local ns
    for ns in $(bl_namespaces); do ip netns delete "$ns"; done
}

# ---------------------------------------------------------------- traffic

# Per mode and side: space-separated repetition values. Keys are "MODE/SIDE".
declare -A TPUT RR_TPS RR_P50 RR_P99 CRR_CPS CRR_P50 CRR_IRQ POD_MTU FWD_PKTS
declare -A CLIENT_NS SERVER_NS SERVER_IP

run_iperf() {
    local key="$1" out
    out="$(timeout $((IPERF_SECS + 20)) ip netns exec "${CLIENT_NS[$key]}" taskset -c 0 \
        iperf3 -c "${SERVER_IP[$key]}" -p "$IPERF_PORT" -t "$IPERF_SECS" -J)" ||
        die "$key: iperf3 failed: $(jq -r '.error // empty' <<<"$out" 2>/dev/null)"
    TPUT[$key]+="$(jq -r '.end.sum_received.bits_per_second' <<<"$out") "
}
run_rr() {
    local key="$1" out
    out="$(timeout $((RR_SECS + 20)) ip netns exec "${CLIENT_NS[$key]}" taskset -c 0 \
        "$NETBENCH" rr --addr "${SERVER_IP[$key]}:$NETBENCH_PORT" --duration "$RR_SECS")" ||
        die "$key: netbench rr failed"
    RR_TPS[$key]+="$(jq -r .transactions_per_sec <<<"$out") "
    RR_P50[$key]+="$(jq -r .p50_us <<<"$out") "
    RR_P99[$key]+="$(jq -r .p99_us <<<"$out") "
}
run_crr() {
    local key="$1" out irq0 irq1
    irq0=$(wakeup_irqs)
    out="$(timeout $((CRR_SECS + 20)) ip netns exec "${CLIENT_NS[$key]}" taskset -c 0 \
        "$NETBENCH" crr --addr "${SERVER_IP[$key]}:$NETBENCH_PORT" --duration "$CRR_SECS")" ||
        die "$key: netbench crr failed"
    irq1=$(wakeup_irqs)
    CRR_CPS[$key]+="$(jq -r .connections_per_sec <<<"$out") "
    CRR_P50[$key]+="$(jq -r .p50_us <<<"$out") "
    CRR_IRQ[$key]+="$(awk -v d=$((irq1 - irq0)) -v c="$(jq -r .connections <<<"$out")" 'BEGIN {print d / c}') "
}

# Packets our programs forwarded on both nodes (Success/EGRESS in `cilium bpf metrics list`).
datapath_packets() {
    local node total=0 n
    for node in node1 node2; do
        n="$("$LAB_BIN" node exec --name "$LAB" "$node" -- "$BIN/cilium" bpf metrics list -o json 2>/dev/null |
            jq -r '[.[]? | select((.reason // "") == "Success" and ((.direction // "") | ascii_upcase) == "EGRESS") | .packets] | add // 0' 2>/dev/null || echo 0)"
        total=$((total + n))
    done
    echo "$total"
}

# bench_mode MODE: a two-node lab in MODE with one pod per node and the baseline of MODE,
# measured alternating; both removed afterwards.
bench_mode() {
    local mode="$1" side key test rep pods ns mtu pkts0
    log "$mode: bringing up lab $LAB (2 nodes)"
    LAB_UP=1
    "$LAB_BIN" up --name "$LAB" --nodes 2 --routing "$mode" >/dev/null
    "$LAB_BIN" pod add --name "$LAB" --node node1 benchx-client >/dev/null
    "$LAB_BIN" pod add --name "$LAB" --node node2 benchx-server >/dev/null
    pods="$("$LAB_BIN" pod list --name "$LAB" -o json)"
    CLIENT_NS[$mode/ours]="$(jq -r '.[] | select(.name=="benchx-client") | .netns' <<<"$pods")"
    SERVER_NS[$mode/ours]="$(jq -r '.[] | select(.name=="benchx-server") | .netns' <<<"$pods")"
    SERVER_IP[$mode/ours]="$(jq -r '.[] | select(.name=="benchx-server") | .ip' <<<"$pods")"
    mtu="$(ip -n "${CLIENT_NS[$mode/ours]}" -j link show eth0 | jq -r '.[0].mtu')"
    POD_MTU[$mode]=$mtu

    log "$mode: building the baseline (pod MTU $mtu) in ${BL_PREFIX}*"
    build_baseline "$mode" "$mtu"
    CLIENT_NS[$mode/base]="${BL_PREFIX}pod1"
    SERVER_NS[$mode/base]="${BL_PREFIX}pod2"
    SERVER_IP[$mode/base]="$BL_POD_NET.2.2"

    for side in ours base; do
        key="$mode/$side"
        in_ns "${CLIENT_NS[$key]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
        in_ns "${SERVER_NS[$key]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
        start_server "${SERVER_NS[$key]}" taskset -c 1 iperf3 -s -p "$IPERF_PORT"
        start_server "${SERVER_NS[$key]}" taskset -c 0 "$NETBENCH" server --port "$NETBENCH_PORT"
        wait_listen "${SERVER_NS[$key]}" "$IPERF_PORT"
        wait_listen "${SERVER_NS[$key]}" "$NETBENCH_PORT"
        # The first packets across a fresh overlay may wait for ARP; a bounded poll.
        for ((rep = 0; rep < 50; rep++)); do
            in_ns "${CLIENT_NS[$key]}" ping -c 1 -W 1 "${SERVER_IP[$key]}" >/dev/null 2>&1 && break
        done
        ((rep < 50)) || die "$key: ${SERVER_IP[$key]} does not answer ping"
        TPUT[$key]="" RR_TPS[$key]="" RR_P50[$key]="" RR_P99[$key]=""
        CRR_CPS[$key]="" CRR_P50[$key]="" CRR_IRQ[$key]=""
    done

    pkts0=$(datapath_packets)
    for test in iperf rr crr; do
        for ((rep = 1; rep <= REPS; rep++)); do
            for side in $(order "$rep"); do
                log "$mode: $test rep $rep/$REPS: $side"
                "run_$test" "$mode/$side"
            done
        done
    done
    FWD_PKTS[$mode]=$(($(datapath_packets) - pkts0))

    stop_servers
    remove_baseline
    lab_down
}

# ---------------------------------------------------------------- time to reachability

REACH_UP=() REACH_PODS=() REACH_PING=() REACH_TOTAL=() REACH_ROUNDS=()

# reach_once: up --nodes 3 (tunnel), one pod per node, then rounds of pings (all pending
# directions in parallel, 1 s timeout each) until every pod has answered every other pod.
reach_once() {
    local t0 t1 t2 t3 k i j pods round d deadline rounds=0
    local -a ns ip pending still
    t0=$EPOCHREALTIME
    LAB_UP=1
    "$LAB_BIN" up --name "$LAB" --nodes 3 --routing tunnel >/dev/null
    t1=$EPOCHREALTIME
    for k in 1 2 3; do
        "$LAB_BIN" pod add --name "$LAB" --node "node$k" "reach$k" >/dev/null
    done
    t2=$EPOCHREALTIME
    pods="$("$LAB_BIN" pod list --name "$LAB" -o json)"
    for k in 1 2 3; do
        ns[k]="$(jq -r --arg p "reach$k" '.[] | select(.name==$p) | .netns' <<<"$pods")"
        ip[k]="$(jq -r --arg p "reach$k" '.[] | select(.name==$p) | .ip' <<<"$pods")"
    done
    pending=()
    for i in 1 2 3; do
        for j in 1 2 3; do
            if ((i != j)); then pending+=("$i $j"); fi
        done
    done
    deadline=$((${t2/./} + REACH_TIMEOUT_S * 1000000))
    while ((${#pending[@]})); do
        if ((${EPOCHREALTIME/./} > deadline)); then
            die "pods not all reachable after ${REACH_TIMEOUT_S} s; missing (from to): $(printf '[%s] ' "${pending[@]}")"
        fi
        rounds=$((rounds + 1))
        round="$(for d in "${pending[@]}"; do
            (in_ns "${ns[${d% *}]}" ping -c 1 -W 1 "${ip[${d#* }]}" >/dev/null 2>&1 && echo "$d") &
        done; wait)"
        still=()
        for d in "${pending[@]}"; do
            if ! grep -qxF "$d" <<<"$round"; then still+=("$d"); fi
        done
        pending=("${still[@]}")
    done
    t3=$EPOCHREALTIME
    lab_down
    REACH_UP+=("$(elapsed "$t0" "$t1")")
    REACH_PODS+=("$(elapsed "$t1" "$t2")")
    REACH_PING+=("$(elapsed "$t2" "$t3")")
    REACH_TOTAL+=("$(elapsed "$t0" "$t3")")
    REACH_ROUNDS+=("$rounds")
    log "reachability: up $(elapsed "$t0" "$t1") s, pods $(elapsed "$t1" "$t2") s, all reachable $(elapsed "$t2" "$t3") s later ($rounds probe round(s))"
}

# ---------------------------------------------------------------- run

bench_mode tunnel
bench_mode native
for ((run = 1; run <= REACH_RUNS; run++)); do
    log "reachability run $run/$REACH_RUNS"
    reach_once
done

END_EPOCH=$EPOCHREALTIME
WALL_S="$(awk -v a="$START_EPOCH" -v b="$END_EPOCH" 'BEGIN {printf "%.0f", b-a}')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report

mode_table() {
    local mode="$1" baseline="$2" ok="$1/ours" bk="$1/base"
    echo "| Metric | Ours | Baseline ($baseline) | Ours/Baseline | Target | Met |"
    echo "|---|---|---|---|---|---|"
    row "TCP throughput, 1 stream (iperf3)" "Gbit/s" 1e9 2 "≥ 0.95" ratio "${TPUT[$ok]}" "${TPUT[$bk]}"
    row "TCP RR, 1 byte (transactions/s)" "k/s" 1e3 1 "≥ 0.95" ratio "${RR_TPS[$ok]}" "${RR_TPS[$bk]}"
    row "TCP RR latency p50" "µs" 1 2 "—" info "${RR_P50[$ok]}" "${RR_P50[$bk]}"
    row "TCP RR latency p99" "µs" 1 2 "—" info "${RR_P99[$ok]}" "${RR_P99[$bk]}"
    row "TCP CRR (connections/s)" "k/s" 1e3 2 "≥ 0.95" ratio "${CRR_CPS[$ok]}" "${CRR_CPS[$bk]}"
    row "TCP CRR latency p50" "µs" 1 1 "—" info "${CRR_P50[$ok]}" "${CRR_P50[$bk]}"
    row "Wake-up interrupts per CRR connection (diagnostic)" "" 1 2 "—" none "${CRR_IRQ[$ok]}" "${CRR_IRQ[$bk]}"
}

reach_cell() { printf '%s s (%s–%s)' "$(fmt "$(median "$@")" 2)" "$(fmt "$(minimum "$@")" 2)" "$(fmt "$(maximum "$@")" 2)"; }

CPU_MODEL="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
VIRT="bare metal"
grep -qw hypervisor /proc/cpuinfo && VIRT="VM"
REPORT="$WORK/report.md"
{
    echo "$BEGIN_MARK"
    echo
    echo "### Pod to pod across nodes: results"
    echo
    echo "- Command: \`$COMMAND_LINE\` (release build), wall time ${WALL_S} s"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(nproc) vCPU $VIRT ($CPU_MODEL), kernel $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END"
    echo "- Each traffic row: median of $REPS repetitions per side (min–max in brackets), ours and"
    echo "  the baseline alternating (ABBA order); iperf3 ${IPERF_SECS} s, netbench rr/crr ${RR_SECS}/${CRR_SECS} s per repetition."
    echo
    echo "#### Tunnel mode (VXLAN), pod MTU ${POD_MTU[tunnel]}"
    echo
    echo "Our datapath forwarded ${FWD_PKTS[tunnel]} packets on the two nodes (\`cilium bpf metrics list\`, Success/EGRESS delta) during these rows."
    echo
    mode_table tunnel "kernel VXLAN + routing"
    echo
    echo "#### Native routing, pod MTU ${POD_MTU[native]}"
    echo
    echo "Our datapath forwarded ${FWD_PKTS[native]} packets on the two nodes (\`cilium bpf metrics list\`, Success/EGRESS delta) during these rows."
    echo
    mode_table native "routing"
    echo
    echo "#### From \`cilium-lab up --nodes 3\` to all pods reachable (tunnel mode)"
    echo
    echo "Median of $REACH_RUNS run(s) (min–max in brackets). Each run: \`up --nodes 3\`, one \`pod add\` per"
    echo "node, then rounds of pings until each of the 3 pods has answered the other two (6 directions)."
    echo
    echo "| Step | Wall time |"
    echo "|---|---|"
    echo "| \`cilium-lab up --nodes 3\` (etcd, 3 nodes, 3 agents ready) | $(reach_cell "${REACH_UP[@]}") |"
    echo "| 3 × \`cilium-lab pod add\` (one pod per node) | $(reach_cell "${REACH_PODS[@]}") |"
    echo "| then until all 6 directions answer ping | $(reach_cell "${REACH_PING[@]}") |"
    echo "| **total, from \`up\` to full reachability** | **$(reach_cell "${REACH_TOTAL[@]}")** |"
    echo
    echo "Probe rounds needed per run (1 = every direction answered the first ping): ${REACH_ROUNDS[*]}."
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
