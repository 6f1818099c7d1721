#!/usr/bin/env bash
# Services at scale on one lab node: TCP connection rate (netbench crr) and request/response
# latency (netbench rr, p50/p99) from a client pod to a ClusterIP backed by one server pod,
# with N services programmed (N = 10, 1,000, 5,000, 10,000; the others point at two dummy backends
# each), against a plain-kernel baseline (veth + routing) whose router translates the same N
# services with iptables rules of the shape kube-proxy writes (KUBE-SERVICES → KUBE-SVC-… →
# KUBE-SEP-…, `-m statistic --mode random --probability` splits, DNAT). N grows phase by
# phase; within a phase ours and the baseline alternate (ABBA) over several repetitions. Each
# phase also measures the kernel's own ceiling: TCP CRR over loopback inside one namespace (no
# veth, no routing, no translation), the fastest any datapath on this machine could set up a
# connection, and so the highest ratio over iptables any datapath could reach.
#
# Usage (as root, from anywhere):
#   bench/services.sh [--reps N] [--sizes "10 1000 5000 10000"] [--lab NAME] [--no-build] [--write-docs]
#
# Everything it creates — the lab `svcs` (namespaces cilab-svcs-*; the services live in its
# etcd), the baseline namespaces cilb-svc-* (router, client, server, loopback) with their
# iptables rules, the servers it starts —
# is removed on exit, also on failure or Ctrl-C. It removes leftovers of an interrupted earlier
# run before starting. Output: a Markdown section on stdout; with --write-docs it also replaces
# that section in docs/benchmarks.md (between the services markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/services.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/services.sh -->'

REPS=5
SIZES="10 1000 5000 10000"
LAB=svcs
BUILD=1
WRITE_DOCS=0
RR_SECS=3
CRR_SECS=3
# Ours at every N against ours at the smallest N: within 5 %.
TARGET_VARIATION=0.05
# Ours against the baseline, connection rate, from this many services on.
TARGET_RATIO=3
TARGET_RATIO_FROM=5000
# The services map holds 65536 entries: a master and two slots per dummy service.
MAX_SIZE=20000
# Services (each a Service and an EndpointSlice) per `cilium apply -f` file: well under the
# agent API's 2 MB body limit.
SERVICES_PER_FILE=1000
# Bound on the wait until the services map shows every service of a phase.
PROGRAM_TIMEOUT_S=900

NETBENCH_PORT=7000
SERVICE_PORT=80
# The measured service (ours and baseline alike).
SERVICE_IP=10.96.200.10

BL_PREFIX=cilb-svc-
BL_ROUTER=${BL_PREFIX}node
BL_CLIENT=${BL_PREFIX}client
BL_SERVER=${BL_PREFIX}server
# The kernel ceiling: client and server in one namespace over loopback.
BL_LOOPBACK=${BL_PREFIX}lo
BL_GW=10.9.0.1
BL_CLIENT_IP=10.9.0.2
BL_SERVER_IP=10.9.0.3

usage() {
    sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

COMMAND_LINE="bench/services.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --reps) REPS="${2:?$1 needs a value}"; shift 2 ;;
    --sizes) SIZES="${2:?$1 needs a value}"; shift 2 ;;
    --lab) LAB="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive integer"
read -ra SIZE_LIST <<<"$SIZES"
((${#SIZE_LIST[@]} >= 2)) || die "--sizes wants at least two sizes, the first one the reference"
prev=0
for n in "${SIZE_LIST[@]}"; do
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n <= prev || n > MAX_SIZE)); then
        die "--sizes wants increasing integers in 1..$MAX_SIZE, got '$SIZES'"
    fi
    prev=$n
done
for tool in iptables-restore iptables jq taskset ss ip awk sort timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs it)"
done

# ---------------------------------------------------------------- state and cleanup

LAB_UP=0
SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-services.XXXXXX)"

bl_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^${BL_PREFIX}(node|client|server|lo)$" || true
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

for dir in /tmp/cilb-services.*; do
    [[ -d $dir && $dir != "$WORK" ]] && rm -rf "$dir"
done
for ns in $(bl_namespaces); do
    kill_in_ns "$ns" '^netbench$'
    log "removing leftover namespace $ns"
    ip netns delete "$ns"
done
STATE="/run/cilium-lab/$LAB/state.json"
remove_leftover_lab "$LAB" '^netbench$'

log "bringing up lab $LAB"
LAB_UP=1
"$LAB_BIN" up --name "$LAB" --nodes 1 >/dev/null
AGENT_PID="$(jq -r '.nodes[0].agent_pid' "$STATE")"
[[ "$(cat "/proc/$AGENT_PID/comm")" == cilium-agent ]] || die "pid $AGENT_PID is not cilium-agent"
NODE_CGROUP="$(jq -r '.nodes[0].cgroup // empty' "$STATE")"
[[ -n $NODE_CGROUP && -d $NODE_CGROUP ]] ||
    log "the lab node has no cgroup: ours measures the per-packet path, without socket LB"

"$LAB_BIN" pod add --name "$LAB" --node node1 --labels app=svcb-client svcb-client >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node1 --labels app=svcb-server svcb-server >/dev/null
PODS_JSON="$("$LAB_BIN" pod list --name "$LAB" -o json)"
pod_field() { jq -r --arg p "$1" --arg f "$2" '.[] | select(.name == $p) | .[$f]' <<<"$PODS_JSON"; }

declare -A CLIENT_NS SERVER_NS
CLIENT_NS[ours]="$(pod_field svcb-client netns)"
SERVER_NS[ours]="$(pod_field svcb-server netns)"
OURS_SERVER_IP="$(pod_field svcb-server ip)"
in_ns "${CLIENT_NS[ours]}" ping -c 1 -W 2 "$OURS_SERVER_IP" >/dev/null ||
    die "ours: the server pod $OURS_SERVER_IP does not answer ping"

log "baseline: $BL_ROUTER routing $BL_CLIENT and $BL_SERVER"
routed_baseline "$BL_ROUTER" "$BL_GW" "$BL_CLIENT=$BL_CLIENT_IP" "$BL_SERVER=$BL_SERVER_IP"
CLIENT_NS[base]=$BL_CLIENT SERVER_NS[base]=$BL_SERVER
in_ns "$BL_CLIENT" ping -c 1 -W 2 "$BL_SERVER_IP" >/dev/null ||
    die "base: the server $BL_SERVER_IP does not answer ping"

log "kernel ceiling: $BL_LOOPBACK, client and server over loopback"
ip netns add "$BL_LOOPBACK"
in_ns "$BL_LOOPBACK" ip link set lo up
CLIENT_NS[lo]=$BL_LOOPBACK SERVER_NS[lo]=$BL_LOOPBACK

# ---------------------------------------------------------------- services, both sides

# dummy_ip I: the ClusterIP of dummy service I (1-based), in 10.97.0.0/16 (within the service
# CIDR 10.96.0.0/12); dummy_backend I K: its backend K (0 or 1) in 10.250/10.251 — addresses
# nothing answers and no traffic is sent to.
DUMMY_AWK='
function dummy_ip(i) { return sprintf("10.97.%d.%d", int(i / 250), i % 250 + 1) }
function dummy_backend(i, k) { return sprintf("10.%d.%d.%d", 250 + k, int(i / 250), i % 250 + 1) }'

# service_files FIRST LAST: Service + EndpointSlice objects for dummy services FIRST..LAST in
# files of SERVICES_PER_FILE services ($WORK/svc-FIRST-K.yaml); prints the file names.
service_files() {
    local first="$1" last="$2" from file k=0
    for ((from = first; from <= last; from += SERVICES_PER_FILE)); do
        k=$((k + 1)) file="$WORK/svc-$first-$k.yaml"
        awk -v from="$from" -v last="$last" -v per="$SERVICES_PER_FILE" -v port="$SERVICE_PORT" \
            -v target="$NETBENCH_PORT" "$DUMMY_AWK"'
            BEGIN {
                for (i = from; i < from + per && i <= last; i++) {
                    name = sprintf("svcb-%05d", i)
                    printf "---\napiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: default}\n", name
                    printf "spec: {clusterIP: %s, ports: [{name: http, port: %d, targetPort: %d, protocol: TCP}]}\n", dummy_ip(i), port, target
                    printf "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                    printf "metadata: {name: %s-a, namespace: default, labels: {kubernetes.io/service-name: %s}}\n", name, name
                    printf "addressType: IPv4\nendpoints: [{addresses: [%s]}, {addresses: [%s]}]\n", dummy_backend(i, 0), dummy_backend(i, 1)
                    printf "ports: [{name: http, port: %d, protocol: TCP}]\n", target
                }
            }' >"$file"
        echo "$file"
    done
}

# The measured service: selects the server pod; the agent derives its EndpointSlice.
cat >"$WORK/measured.yaml" <<EOF
apiVersion: v1
kind: Service
metadata: {name: svcb-measured, namespace: default}
spec:
  clusterIP: $SERVICE_IP
  selector: {app: svcb-server}
  ports:
  - {name: http, port: $SERVICE_PORT, targetPort: $NETBENCH_PORT, protocol: TCP}
EOF

# ours_services: how many of the bench's ClusterIPs (10.97.*, the measured one) have a
# master entry with at least one slot in the services map (0 while it cannot be read).
ours_services() {
    {
        lab_cilium "$LAB" node1 bpf lb list -o json |
            jq --arg m "$SERVICE_IP:" '[.[] | select(.slot == 0 and .count > 0 and
                ((.service | startswith("10.97.")) or (.service | startswith($m))))] | length'
    } 2>/dev/null || echo 0
}

# iptables_rules N: the kube-proxy-shaped nat table of the baseline router with N services:
# N-1 dummies with two endpoints each (a 0.5 probability split), then the measured service
# with the server as its only endpoint, last in KUBE-SERVICES (a lookup walks every rule
# before it, as for the service whose rule kube-proxy writes last).
iptables_rules() {
    awk -v n="$1" -v port="$SERVICE_PORT" -v target="$NETBENCH_PORT" -v vip="$SERVICE_IP" \
        -v server="$BL_SERVER_IP" "$DUMMY_AWK"'
        function chain(kind, i, k) { return sprintf("KUBE-%s-%08X%04d", kind, i * 2654435761 % 4294967296, k) }
        BEGIN {
            print "*nat"
            print ":PREROUTING ACCEPT [0:0]"
            print ":INPUT ACCEPT [0:0]"
            print ":OUTPUT ACCEPT [0:0]"
            print ":POSTROUTING ACCEPT [0:0]"
            print ":KUBE-SERVICES - [0:0]"
            for (i = 1; i <= n; i++) {
                printf ":%s - [0:0]\n", chain("SVC", i, 0)
                printf ":%s - [0:0]\n", chain("SEP", i, 0)
                if (i < n) printf ":%s - [0:0]\n", chain("SEP", i, 1)
            }
            print "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
            print "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"
            for (i = 1; i < n; i++) {
                printf "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"default/svcb-%05d:http cluster IP\" -m tcp --dport %d -j %s\n", dummy_ip(i), i, port, chain("SVC", i, 0)
                printf "-A %s -m comment --comment \"default/svcb-%05d:http -> %s:%d\" -m statistic --mode random --probability 0.50000000000 -j %s\n", chain("SVC", i, 0), i, dummy_backend(i, 0), target, chain("SEP", i, 0)
                printf "-A %s -m comment --comment \"default/svcb-%05d:http -> %s:%d\" -j %s\n", chain("SVC", i, 0), i, dummy_backend(i, 1), target, chain("SEP", i, 1)
                for (k = 0; k < 2; k++)
                    printf "-A %s -p tcp -m comment --comment \"default/svcb-%05d:http\" -m tcp -j DNAT --to-destination %s:%d\n", chain("SEP", i, k), i, dummy_backend(i, k), target
            }
            printf "-A KUBE-SERVICES -d %s/32 -p tcp -m comment --comment \"default/svcb-measured:http cluster IP\" -m tcp --dport %d -j %s\n", vip, port, chain("SVC", n, 0)
            printf "-A %s -m comment --comment \"default/svcb-measured:http -> %s:%d\" -j %s\n", chain("SVC", n, 0), server, target, chain("SEP", n, 0)
            printf "-A %s -p tcp -m comment --comment \"default/svcb-measured:http\" -m tcp -j DNAT --to-destination %s:%d\n", chain("SEP", n, 0), server, target
            print "COMMIT"
        }'
}

# ---------------------------------------------------------------- servers and checks

for side in ours base lo; do
    in_ns "${CLIENT_NS[$side]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    in_ns "${SERVER_NS[$side]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    start_server "${SERVER_NS[$side]}" taskset -c 0 "$NETBENCH" server --port "$NETBENCH_PORT"
    wait_listen "${SERVER_NS[$side]}" "$NETBENCH_PORT"
done

# connects SIDE: 0 when a TCP connect from SIDE's client to the ClusterIP succeeds within 1 s.
connects() {
    ip netns exec "${CLIENT_NS[$1]}" timeout 1 bash -c "exec 3<>/dev/tcp/$SERVICE_IP/$SERVICE_PORT" 2>/dev/null
}

# ---------------------------------------------------------------- phases

# client_netbench SIDE rr|crr SECS: netbench from SIDE's client pod to the ClusterIP (the
# loopback side: to its own server on 127.0.0.1). Ours runs in the lab node's cgroup, as the
# lab's pods do, where the agent's socket LB (on by default, as in Cilium's kube-proxy
# replacement) translates the ClusterIP at connect().
client_netbench() {
    local addr="$SERVICE_IP:$SERVICE_PORT"
    [[ $1 == lo ]] && addr="127.0.0.1:$NETBENCH_PORT"
    if [[ $1 == ours && -n $NODE_CGROUP ]]; then
        (echo "$BASHPID" >"$NODE_CGROUP/cgroup.procs" &&
            netbench_run "$2" "${CLIENT_NS[$1]}" "$addr" "$3")
    else
        netbench_run "$2" "${CLIENT_NS[$1]}" "$addr" "$3"
    fi
}

declare -A RR_TPS RR_P50 RR_P99 CRR_CPS PROGRAM_S APPLY_S ADDED AGENT_PCT MAP_SERVICES BL_RULES BL_RESTORE_S
run_rr() {
    local out
    out="$(client_netbench "$1" rr "$RR_SECS")" ||
        die "$1/$2: netbench rr failed"
    RR_TPS[$1/$2]+="$(jq -r .transactions_per_sec <<<"$out") "
    RR_P50[$1/$2]+="$(jq -r .p50_us <<<"$out") "
    RR_P99[$1/$2]+="$(jq -r .p99_us <<<"$out") "
}
run_crr() {
    local out
    out="$(client_netbench "$1" crr "$CRR_SECS")" ||
        die "$1/$2: netbench crr failed"
    CRR_CPS[$1/$2]+="$(jq -r .connections_per_sec <<<"$out") "
}

# agent_ticks: the agent's CPU time so far (user + system, in clock ticks).
agent_ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }

lab_cilium "$LAB" node1 apply -f "$WORK/measured.yaml" >/dev/null
AGENT_CPU0="$(agent_ticks)"
PROGRAM_TOTAL_S=0
have=1
for n in "${SIZE_LIST[@]}"; do
    # Ours: apply the dummies this phase adds, wait until the services map shows all N.
    t0=$EPOCHREALTIME
    if ((n > have)); then
        for file in $(service_files "$have" $((n - 1))); do
            lab_cilium "$LAB" node1 apply -f "$file" >/dev/null || die "cilium apply -f $file failed"
        done
    fi
    APPLY_S[$n]="$(elapsed "$t0" "$EPOCHREALTIME")"
    ADDED[$n]=$((n - have + (have == 1 ? 1 : 0)))
    last_log=$EPOCHREALTIME
    while :; do
        got="$(ours_services)"
        ((got >= n)) && break
        (($(elapsed "$t0" "$EPOCHREALTIME" | cut -d. -f1) < PROGRAM_TIMEOUT_S)) ||
            die "the services map shows $got of $n services after ${PROGRAM_TIMEOUT_S} s"
        if (($(elapsed "$last_log" "$EPOCHREALTIME" | cut -d. -f1) >= 15)); then
            log "waiting for the services map: $got/$n services"
            last_log=$EPOCHREALTIME
        fi
        sleep 0.2
    done
    PROGRAM_S[$n]="$(elapsed "$t0" "$EPOCHREALTIME")"
    PROGRAM_TOTAL_S="$(awk -v a="$PROGRAM_TOTAL_S" -v b="${PROGRAM_S[$n]}" 'BEGIN {printf "%.3f", a + b}')"
    MAP_SERVICES[$n]=$got
    have=$n
    log "N=$n: services map shows $got services, ${PROGRAM_S[$n]} s after the phase's first apply"

    # Baseline: the whole nat table for N services in one iptables-restore.
    iptables_rules "$n" >"$WORK/iptables-$n"
    t0=$EPOCHREALTIME
    in_ns "$BL_ROUTER" iptables-restore <"$WORK/iptables-$n"
    BL_RESTORE_S[$n]="$(elapsed "$t0" "$EPOCHREALTIME")"
    BL_RULES[$n]="$(in_ns "$BL_ROUTER" iptables -t nat -S | grep -c '^-A KUBE-')"

    for side in ours base; do
        connects "$side" || die "$side/$n: the client cannot connect to $SERVICE_IP:$SERVICE_PORT"
    done
    if ((n == SIZE_LIST[0])); then
        # Unrecorded: the first connections through each side use every client port and
        # conntrack entry for the first time; later phases would be the only ones not to pay.
        for side in ours base lo; do
            log "warm-up: $side"
            client_netbench "$side" crr "$CRR_SECS" >/dev/null || die "$side: warm-up crr failed"
        done
    fi
    ticks0="$(agent_ticks)" t0=$EPOCHREALTIME
    for test in rr crr; do
        for ((rep = 1; rep <= REPS; rep++)); do
            sides="$(order "$rep")"
            [[ $test == crr ]] && sides+=" lo"
            for side in $sides; do
                log "N=$n $test rep $rep/$REPS: $side"
                "run_$test" "$side" "$n"
            done
        done
    done
    AGENT_PCT[$n]="$(awk -v a="$ticks0" -v b="$(agent_ticks)" -v hz="$(getconf CLK_TCK)" \
        -v s="$(elapsed "$t0" "$EPOCHREALTIME")" 'BEGIN {printf "%.1f", 100 * (b - a) / hz / s}')"
done
AGENT_CPU_S="$(awk -v a="$AGENT_CPU0" -v b="$(agent_ticks)" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", (b - a) / hz}')"
AGENT_RSS_MIB="$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$AGENT_PID/status")"
stop_servers

END_EPOCH=$EPOCHREALTIME
WALL_S="$(awk -v a="$START_EPOCH" -v b="$END_EPOCH" 'BEGIN {printf "%.0f", b-a}')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report

REF=${SIZE_LIST[0]}
# shellcheck disable=SC2086 # the value lists are meant to split
vs() { ratio "$(median $1)" "$(median $2)"; }
# within A B: "**yes**" when A/B is within TARGET_VARIATION of 1.
within() { awk -v r="$1" -v t="$TARGET_VARIATION" 'BEGIN {d = r - 1; if (d < 0) d = -d; print (d < t) ? "**yes**" : "**no**"}'; }
REPORT="$WORK/report.md"
# shellcheck disable=SC2086 # the value lists are meant to split
{
    echo "$BEGIN_MARK"
    echo
    echo "### Services at scale: results"
    echo
    echo "- Command: \`$COMMAND_LINE\` (release build), wall time ${WALL_S} s"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(machine_line)"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END"
    echo "- Each cell: median of $REPS repetitions (min–max in brackets); within a phase ours and the"
    echo "  baseline alternate (ABBA); netbench rr/crr ${RR_SECS}/${CRR_SECS} s per repetition, both ends on vCPU 0."
    echo "  Phases run in order of N, so drift between phases falls on both sides but not evenly on every N."
    echo "  Before the first phase one unrecorded CRR run per side uses every client port once."
    echo "- Kernel ceiling: netbench crr over loopback inside one namespace (no veth, no routing, no"
    echo "  translation), measured after ours and iptables in every CRR repetition: no datapath on this"
    echo "  machine sets up connections faster, so ceiling / iptables is the highest ratio any could reach."
    echo "- Ours: services applied with \`cilium apply -f\` (a Service and an EndpointSlice each, $SERVICES_PER_FILE services"
    echo "  per file); programmed = the services map shows every service's master with its slots."
    echo "  Programming $((${SIZE_LIST[-1]} - 1)) dummy services plus the measured one took ${PROGRAM_TOTAL_S} s in all."
    echo "  Agent CPU over the whole run: ${AGENT_CPU_S} s; RSS at the end ${AGENT_RSS_MIB} MiB."
    if [[ -n $NODE_CGROUP ]]; then
        echo "- Ours' client runs in the lab node's cgroup: socket LB translates the ClusterIP at connect()."
    else
        echo "- Ours' client runs outside any socket-LB cgroup: per-packet translation in \`bpf_lxc\`."
    fi
    echo
    echo "| N services | Added this phase: applied, in the services map | Agent CPU during the traffic | Baseline: nat rules, iptables-restore | TCP CRR, ours | TCP CRR, iptables | TCP CRR, kernel ceiling | RR p50, ours | RR p50, iptables | RR p99, ours | RR p99, iptables | RR, ours | RR, iptables |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    for n in "${SIZE_LIST[@]}"; do
        printf '| %s | +%s: %s s, %s s (%s in map) | %s %% | %s rules, %s s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
            "$n" "${ADDED[$n]}" "${APPLY_S[$n]}" "${PROGRAM_S[$n]}" "${MAP_SERVICES[$n]}" "${AGENT_PCT[$n]}" "${BL_RULES[$n]}" "${BL_RESTORE_S[$n]}" \
            "$(spread 2 1e3 k/s ${CRR_CPS[ours/$n]})" "$(spread 2 1e3 k/s ${CRR_CPS[base/$n]})" \
            "$(spread 2 1e3 k/s ${CRR_CPS[lo/$n]})" \
            "$(spread 1 1 µs ${RR_P50[ours/$n]})" "$(spread 1 1 µs ${RR_P50[base/$n]})" \
            "$(spread 1 1 µs ${RR_P99[ours/$n]})" "$(spread 1 1 µs ${RR_P99[base/$n]})" \
            "$(spread 1 1e3 k/s ${RR_TPS[ours/$n]})" "$(spread 1 1e3 k/s ${RR_TPS[base/$n]})"
    done
    echo
    echo "| N | Ours CRR, N / $REF | Ours RR p50, N / $REF | Within ±$(fmt "$TARGET_VARIATION" 0 0.01) % | CRR ours / iptables | Target | Met | Kernel ceiling / iptables | iptables CRR, N / $REF |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for n in "${SIZE_LIST[@]}"; do
        crr="$(vs "${CRR_CPS[ours/$n]}" "${CRR_CPS[ours/$REF]}")"
        p50="$(vs "${RR_P50[ours/$n]}" "${RR_P50[ours/$REF]}")"
        both="$(awk -v a="$(within "$crr")" -v b="$(within "$p50")" 'BEGIN {print (a == b && a == "**yes**") ? a : "**no**"}')"
        vsb="$(vs "${CRR_CPS[ours/$n]}" "${CRR_CPS[base/$n]}")"
        if ((n >= TARGET_RATIO_FROM)); then
            target="≥ $TARGET_RATIO"
            met="$(awk -v r="$vsb" -v t="$TARGET_RATIO" 'BEGIN {print (r >= t) ? "**yes**" : "**no**"}')"
        else
            target="—" met="—"
        fi
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$crr" "$p50" "$both" "$vsb" "$target" "$met" \
            "$(vs "${CRR_CPS[lo/$n]}" "${CRR_CPS[base/$n]}")" "$(vs "${CRR_CPS[base/$n]}" "${CRR_CPS[base/$REF]}")"
    done
    echo
    echo "$END_MARK"
} >"$REPORT"
cat "$REPORT"

if ((WRITE_DOCS)); then
    write_docs_section "$DOC" "$REPORT" "$BEGIN_MARK" "$END_MARK"
    log "wrote the results into $DOC"
fi
log "done in ${WALL_S} s"
