#!/usr/bin/env bash
# Policy at scale on one lab node: TCP RR and CRR from a client pod to server pods under an
# ingress policy that allows the client among N identities, each allowed by its own rule, for
# N = 1, 1,000 and 10,000 side by side (one server pod per N, so every N is measured in the
# same rounds), against a plain-kernel baseline per N (veth + routing) whose router admits the
# client with N linear iptables rules. Same run, alternating, several repetitions.
#
# Usage (as root, from anywhere):
#   bench/policy-scale.sh [--reps N] [--sizes "1 1000 10000"] [--lab NAME] [--no-build] [--write-docs]
#
# Everything it creates — the lab `pscale` (namespaces cilab-pscale-*; the identities and
# policies live in its etcd), the baseline namespaces cilb-ps-* with their iptables rules, the
# servers it starts — is removed on exit, also on failure or Ctrl-C. It removes leftovers of an
# interrupted earlier run before starting. Output: a Markdown section on stdout; with
# --write-docs it also replaces that section in docs/benchmarks.md (between the policy-scale
# markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/policy-scale.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/policy-scale.sh -->'

REPS=5
SIZES="1 1000 10000"
LAB=pscale
BUILD=1
WRITE_DOCS=0
RR_SECS=3
CRR_SECS=3
# Each N against the smallest: ours must stay within 3 % (O(1) policy lookup).
TARGET_RATIO=0.97
# The policy map holds 16384 entries; one is the host's.
MAX_SIZE=16000
# Rules per CiliumNetworkPolicy object: keeps each object well under etcd's 1.5 MiB request
# limit and the agent API's 2 MB body limit.
RULES_PER_OBJECT=2000
# Key/value puts per etcd transaction (etcd's --max-txn-ops defaults to 128).
PUTS_PER_TXN=100
# First numeric identity of the peers written into the kvstore (cluster range 256–65535).
PEER_ID_BASE=20000
# Bound on the wait until every server's policy map holds its entries.
PROGRAM_TIMEOUT_S=1200

NETBENCH_PORT=7000
# A port no policy and no iptables rule allows: probes to it must be dropped.
CLOSED_PORT=7001

BL_PREFIX=cilb-ps-

usage() {
    sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

COMMAND_LINE="bench/policy-scale.sh${*:+ $*}"
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
MAX_N=$prev
for tool in etcdctl iptables-restore iptables jq taskset ss ip awk sort timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed (scripts/setup.sh installs it)"
done

# ---------------------------------------------------------------- state and cleanup

LAB_UP=0
SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-policy-scale.XXXXXX)"

bl_namespaces() {
    ip netns list | awk '{print $1}' | grep -E "^${BL_PREFIX}[0-9]+-(node|client|server)$" || true
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

for dir in /tmp/cilb-policy-scale.*; do
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
"$LAB_BIN" up --name "$LAB" >/dev/null
AGENT_PID="$(jq -r '.nodes[0].agent_pid' "$STATE")"
ETCD_NS="$(jq -r '.etcd.netns' "$STATE")"
ETCD_URL="$(jq -r '.etcd.client_url' "$STATE")"
[[ "$(cat "/proc/$AGENT_PID/comm")" == cilium-agent ]] || die "pid $AGENT_PID is not cilium-agent"

"$LAB_BIN" pod add --name "$LAB" --node node1 --labels app=pscale-client ps-client >/dev/null
for n in "${SIZE_LIST[@]}"; do
    "$LAB_BIN" pod add --name "$LAB" --node node1 --labels "app=pscale-server-$n" "ps-server-$n" >/dev/null
done
PODS_JSON="$("$LAB_BIN" pod list --name "$LAB" -o json)"
pod_field() { jq -r --arg p "$1" --arg f "$2" '.[] | select(.name == $p) | .[$f]' <<<"$PODS_JSON"; }
CLIENT_IDENTITY="$(pod_field ps-client identity)"
[[ $CLIENT_IDENTITY =~ ^[0-9]+$ ]] || die "ps-client has no identity (got '$CLIENT_IDENTITY')"

declare -A CLIENT_NS SERVER_NS SERVER_IP ENDPOINT_ID
for n in "${SIZE_LIST[@]}"; do
    CLIENT_NS[ours/$n]="$(pod_field ps-client netns)"
    SERVER_NS[ours/$n]="$(pod_field "ps-server-$n" netns)"
    SERVER_IP[ours/$n]="$(pod_field "ps-server-$n" ip)"
    ENDPOINT_ID[$n]="$(lab_endpoint_id "$LAB" node1 "ps-server-$n")"
    [[ -n ${ENDPOINT_ID[$n]} ]] || die "no endpoint for ps-server-$n"
    in_ns "${CLIENT_NS[ours/$n]}" ping -c 1 -W 2 "${SERVER_IP[ours/$n]}" >/dev/null ||
        die "ours/$n: ${SERVER_IP[ours/$n]} does not answer ping before any policy"
done

# ---------------------------------------------------------------- rules and identities

# peer_labels I: the kvstore labels string of peer identity I, shaped like a pod's.
peer_labels() {
    printf 'k8s:app=pscale-peer-%05d;k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=default;k8s:io.cilium.k8s.policy.cluster=default;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default;' "$1"
}

# policy_files N: writes server N's policy as CiliumNetworkPolicy objects of at most
# RULES_PER_OBJECT rules into $WORK/policy-N-K.yaml: rule 0 admits the client, rule I admits
# peer I, each on TCP NETBENCH_PORT; prints the file names.
policy_files() {
    local n="$1" first file k=0
    for ((first = 0; first < n; first += RULES_PER_OBJECT)); do
        k=$((k + 1)) file="$WORK/policy-$n-$k.yaml"
        awk -v n="$n" -v first="$first" -v per="$RULES_PER_OBJECT" -v k="$k" -v port="$NETBENCH_PORT" 'BEGIN {
            printf "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\n"
            printf "metadata: {name: pscale-%d-%d, namespace: default}\nspecs:\n", n, k
            for (i = first; i < first + per && i < n; i++) {
                peer = (i == 0) ? "pscale-client" : sprintf("pscale-peer-%05d", i)
                printf "- {endpointSelector: {matchLabels: {app: pscale-server-%d}}, ingress: [{fromEndpoints: [{matchLabels: {app: %s}}], toPorts: [{ports: [{port: \"%d\", protocol: TCP}]}]}]}\n", n, peer, port
            }
        }' >"$file"
        echo "$file"
    done
}

# Policies first, while only a handful of identities exist (resolving is cheap then), then the
# identities in a few batches.
T_PROGRAM0=$EPOCHREALTIME
RULES_TOTAL=0 OBJECTS=0
for n in "${SIZE_LIST[@]}"; do
    for file in $(policy_files "$n"); do
        lab_cilium "$LAB" node1 apply -f "$file" >/dev/null || die "cilium apply -f $file failed"
        OBJECTS=$((OBJECTS + 1))
    done
    RULES_TOTAL=$((RULES_TOTAL + n))
done
log "applied $RULES_TOTAL rules; writing $((MAX_N - 1)) peer identities into etcd"
for ((first = 1; first < MAX_N; first += PUTS_PER_TXN)); do
    {
        echo
        for ((i = first; i < first + PUTS_PER_TXN && i < MAX_N; i++)); do
            printf 'put cilium/state/identities/v1/id/%d "%s"\n' $((PEER_ID_BASE + i)) "$(peer_labels "$i")"
        done
        printf '\n\n'
    } >"$WORK/txn"
    in_ns "$ETCD_NS" etcdctl --endpoints "$ETCD_URL" txn <"$WORK/txn" >"$WORK/txn.out" ||
        die "etcdctl txn failed: $(head -c 300 "$WORK/txn.out")"
    head -n1 "$WORK/txn.out" | grep -qx SUCCESS || die "etcdctl txn did not succeed: $(head -n1 "$WORK/txn.out")"
done
T_IDS=$EPOCHREALTIME

# map_summary N: "entries enforced has_client" of server N's policy map ("0 false 0" while it
# cannot be read).
map_summary() {
    {
        lab_cilium "$LAB" node1 bpf policy get "${ENDPOINT_ID[$1]}" -o json |
            jq -r --argjson c "$CLIENT_IDENTITY" --argjson p "$NETBENCH_PORT" \
                '"\(.entries | length) \(.ingress_enforced) \([.entries[] | select(.identity == $c and .protocol == 6 and .port_range == [$p, $p] and .policy == "Allow")] | length)"'
    } 2>/dev/null || echo "0 false 0"
}

# Every server's map must hold its N rules' identities plus the host's entry (allow-localhost).
declare -A MAP_ENTRIES
for n in "${SIZE_LIST[@]}"; do
    want=$((n + 1)) last_log=$EPOCHREALTIME
    while :; do
        read -r entries enforced client <<<"$(map_summary "$n")"
        [[ ${entries:-0} -ge $want && $enforced == true && $client == 1 ]] && break
        (($(elapsed "$T_PROGRAM0" "$EPOCHREALTIME" | cut -d. -f1) < PROGRAM_TIMEOUT_S)) ||
            die "server $n's policy map holds ${entries:-?} entries (want $want, enforced=$enforced) after ${PROGRAM_TIMEOUT_S} s"
        if (($(elapsed "$last_log" "$EPOCHREALTIME" | cut -d. -f1) >= 15)); then
            log "waiting for server $n's policy map: ${entries:-?}/$want entries"
            last_log=$EPOCHREALTIME
        fi
        sleep 0.5
    done
    MAP_ENTRIES[$n]=$entries
done
T_PROGRAMMED=$EPOCHREALTIME
PROGRAM_S="$(elapsed "$T_PROGRAM0" "$T_PROGRAMMED")"
IDS_TO_MAPS_S="$(elapsed "$T_IDS" "$T_PROGRAMMED")"
IDENTITIES="$(lab_cilium "$LAB" node1 identity list -o json | jq length)"
log "policy maps programmed $PROGRAM_S s after the first rule ($IDENTITIES identities known to the agent)"

# ---------------------------------------------------------------- the baselines

# One router per N (cilb-ps-K-node, K = position of N in --sizes) with a client and a server
# pod. Its FORWARD chain: established/related first (as a stateful firewall and as our
# conntrack: only new connections meet the rules), then N-1 rules for other sources, then the
# client's, all for TCP to the server's port; policy DROP.
declare -A BL_RULES
k=0
for n in "${SIZE_LIST[@]}"; do
    k=$((k + 1))
    router="${BL_PREFIX}$k-node" gw="10.9.$k.1"
    CLIENT_NS[base/$n]="${BL_PREFIX}$k-client" SERVER_NS[base/$n]="${BL_PREFIX}$k-server"
    client_ip="10.9.$k.2" SERVER_IP[base/$n]="10.9.$k.3"
    log "baseline for N=$n: $router with $n iptables rules"
    routed_baseline "$router" "$gw" "${CLIENT_NS[base/$n]}=$client_ip" "${SERVER_NS[base/$n]}=${SERVER_IP[base/$n]}"
    in_ns "${CLIENT_NS[base/$n]}" ping -c 1 -W 2 "${SERVER_IP[base/$n]}" >/dev/null ||
        die "base/$n: ${SERVER_IP[base/$n]} does not answer ping before the rules"
    awk -v n="$n" -v dst="${SERVER_IP[base/$n]}" -v src="$client_ip" -v port="$NETBENCH_PORT" 'BEGIN {
        print "*filter"
        print ":INPUT ACCEPT [0:0]"
        print ":FORWARD DROP [0:0]"
        print ":OUTPUT ACCEPT [0:0]"
        print "-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
        for (i = 1; i < n; i++)
            printf "-A FORWARD -s 10.250.%d.%d/32 -d %s/32 -p tcp -m tcp --dport %d -j ACCEPT\n", int(i / 256), i % 256, dst, port
        printf "-A FORWARD -s %s/32 -d %s/32 -p tcp -m tcp --dport %d -j ACCEPT\n", src, dst, port
        print "COMMIT"
    }' >"$WORK/iptables-$n"
    in_ns "$router" iptables-restore <"$WORK/iptables-$n"
    BL_RULES[$n]="$(in_ns "$router" iptables -S FORWARD | grep -c -- '--dport')"
    ((BL_RULES[$n] == n)) || die "baseline $n: FORWARD holds ${BL_RULES[$n]} port rules, want $n"
done

# ---------------------------------------------------------------- servers and checks

CONFIGS=()
for n in "${SIZE_LIST[@]}"; do CONFIGS+=("ours/$n" "base/$n"); done
for key in "${CONFIGS[@]}"; do
    in_ns "${CLIENT_NS[$key]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    in_ns "${SERVER_NS[$key]}" sysctl -qw net.ipv4.tcp_max_tw_buckets=0
    start_server "${SERVER_NS[$key]}" taskset -c 0 "$NETBENCH" server --port "$NETBENCH_PORT"
    wait_listen "${SERVER_NS[$key]}" "$NETBENCH_PORT"
done

# probe KEY PORT: 0 when a TCP connect from the client succeeds within 1 s, 1 when it is
# refused (it reached the server), 124 when it times out (dropped on the way).
probe() {
    local rc=0
    ip netns exec "${CLIENT_NS[$1]}" timeout 1 bash -c "exec 3<>/dev/tcp/${SERVER_IP[$1]}/$2" 2>/dev/null || rc=$?
    echo "$rc"
}
for key in "${CONFIGS[@]}"; do
    [[ $(probe "$key" "$NETBENCH_PORT") == 0 ]] || die "$key: the client cannot connect to port $NETBENCH_PORT"
    [[ $(probe "$key" "$CLOSED_PORT") == 124 ]] ||
        die "$key: a connection to port $CLOSED_PORT was not dropped: the policy does not enforce default deny"
done
log "policy checks passed: port $NETBENCH_PORT open, port $CLOSED_PORT dropped, on every side"

# ---------------------------------------------------------------- traffic, alternating

declare -A RR_TPS CRR_CPS
for key in "${CONFIGS[@]}"; do RR_TPS[$key]="" CRR_CPS[$key]=""; done

run_rr() {
    local out
    out="$(netbench_run rr "${CLIENT_NS[$1]}" "${SERVER_IP[$1]}:$NETBENCH_PORT" "$RR_SECS")" ||
        die "$1: netbench rr failed"
    RR_TPS[$1]+="$(jq -r .transactions_per_sec <<<"$out") "
}
run_crr() {
    local out
    out="$(netbench_run crr "${CLIENT_NS[$1]}" "${SERVER_IP[$1]}:$NETBENCH_PORT" "$CRR_SECS")" ||
        die "$1: netbench crr failed"
    CRR_CPS[$1]+="$(jq -r .connections_per_sec <<<"$out") "
}

# Odd repetitions go through the configurations in order, even ones in reverse (ABBA over all
# of them), so a drift in the machine's load falls on every configuration alike.
configs_for_rep() {
    if (($1 % 2)); then
        printf '%s\n' "${CONFIGS[@]}"
    else
        printf '%s\n' "${CONFIGS[@]}" | tac
    fi
}

AGENT_CPU0="$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")"
T_TRAFFIC0=$EPOCHREALTIME
for test in rr crr; do
    for ((rep = 1; rep <= REPS; rep++)); do
        for key in $(configs_for_rep "$rep"); do
            log "$test rep $rep/$REPS: $key"
            "run_$test" "$key"
        done
    done
done
TRAFFIC_S="$(elapsed "$T_TRAFFIC0" "$EPOCHREALTIME")"
AGENT_CPU_PCT="$(awk -v a="$AGENT_CPU0" -v b="$(awk '{print $14 + $15}' "/proc/$AGENT_PID/stat")" \
    -v hz="$(getconf CLK_TCK)" -v s="$TRAFFIC_S" 'BEGIN {printf "%.1f", 100 * (b - a) / hz / s}')"
AGENT_RSS_MIB="$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$AGENT_PID/status")"
stop_servers

END_EPOCH=$EPOCHREALTIME
WALL_S="$(awk -v a="$START_EPOCH" -v b="$END_EPOCH" 'BEGIN {printf "%.0f", b-a}')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report

REF=${SIZE_LIST[0]}
# vs_ref VALUES_OF_N VALUES_OF_REF: ratio of the medians of two space-separated lists.
# shellcheck disable=SC2086 # the value lists are meant to split
vs_ref() { ratio "$(median $1)" "$(median $2)"; }
REPORT="$WORK/report.md"
# shellcheck disable=SC2086 # the value lists are meant to split
{
    echo "$BEGIN_MARK"
    echo
    echo "### Policy at scale: results"
    echo
    echo "- Command: \`$COMMAND_LINE\` (release build), wall time ${WALL_S} s"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(machine_line)"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END"
    echo "- Each cell: median of $REPS repetitions (min–max in brackets); all configurations alternating"
    echo "  (in order, then in reverse); netbench rr/crr ${RR_SECS}/${CRR_SECS} s per repetition, both ends on vCPU 0."
    echo "- Ours: $RULES_TOTAL rules in $OBJECTS CiliumNetworkPolicy objects (\`cilium apply -f\`), $IDENTITIES identities"
    echo "  known to the agent. Policy maps fully programmed ${PROGRAM_S} s after the first rule was applied"
    echo "  (${IDS_TO_MAPS_S} s after the last identity was written). Agent during the traffic: ${AGENT_CPU_PCT} % of one vCPU, RSS ${AGENT_RSS_MIB} MiB."
    echo
    echo "| N rules = N allowed identities | Server's policy map | Baseline FORWARD rules | TCP RR, ours | TCP RR, baseline | TCP CRR, ours | TCP CRR, baseline |"
    echo "|---|---|---|---|---|---|---|"
    for n in "${SIZE_LIST[@]}"; do
        printf '| %s | %s entries | %s + established | %s | %s | %s | %s |\n' "$n" "${MAP_ENTRIES[$n]}" "${BL_RULES[$n]}" \
            "$(spread 1 1e3 k/s ${RR_TPS[ours/$n]})" "$(spread 1 1e3 k/s ${RR_TPS[base/$n]})" \
            "$(spread 2 1e3 k/s ${CRR_CPS[ours/$n]})" "$(spread 2 1e3 k/s ${CRR_CPS[base/$n]})"
    done
    echo
    echo "| N | Ours RR, N / $REF | Ours CRR, N / $REF | Target | Met | Baseline RR, N / $REF | Baseline CRR, N / $REF | CRR ours / baseline |"
    echo "|---|---|---|---|---|---|---|---|"
    for n in "${SIZE_LIST[@]:1}"; do
        rr="$(vs_ref "${RR_TPS[ours/$n]}" "${RR_TPS[ours/$REF]}")"
        crr="$(vs_ref "${CRR_CPS[ours/$n]}" "${CRR_CPS[ours/$REF]}")"
        met="$(awk -v a="$rr" -v b="$crr" -v t="$TARGET_RATIO" 'BEGIN {print (a >= t && b >= t) ? "**yes**" : "**no**"}')"
        printf '| %s | %s | %s | both ≥ %s | %s | %s | %s | %s |\n' "$n" "$rr" "$crr" "$TARGET_RATIO" "$met" \
            "$(vs_ref "${RR_TPS[base/$n]}" "${RR_TPS[base/$REF]}")" \
            "$(vs_ref "${CRR_CPS[base/$n]}" "${CRR_CPS[base/$REF]}")" \
            "$(vs_ref "${CRR_CPS[ours/$n]}" "${CRR_CPS[base/$n]}")"
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
