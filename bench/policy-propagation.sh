#!/usr/bin/env bash
# Policy propagation on a three-node lab: the time from `cilium apply -f` on node1 until the
# datapath of every node enforces the policy, and from `cilium delete -f` until every node has
# lifted it, sampled many times. Enforcement is read from each node's policy map (`cilium bpf
# policy get`), polled round-robin as fast as the CLI answers.
#
# Usage (as root, from anywhere):
#   bench/policy-propagation.sh [--samples N] [--lab NAME] [--no-build] [--write-docs]
#
# Everything it creates — the lab `pprop` (namespaces cilab-pprop-*) and the servers the lab
# starts in its pods — is removed on exit, also on failure or Ctrl-C. It removes leftovers of an
# interrupted earlier run before starting. Output: a Markdown section on stdout; with
# --write-docs it also replaces that section in docs/benchmarks.md (between the
# policy-propagation markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/policy-propagation.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/policy-propagation.sh -->'

SAMPLES=100
LAB=pprop
BUILD=1
WRITE_DOCS=0
NODES=3
TARGET_P99_MS=500
# Bound on one sample: the policy must be enforced (or lifted) everywhere by then.
SAMPLE_TIMEOUT_S=10
# Pause between two polling rounds (ms, < 1000): keeps the poller from taking a whole vCPU away
# from the agents it measures.
POLL_PAUSE_MS=10
SERVE_PORT=80
# A port the server does not listen on: refused without the policy, dropped with it.
CLOSED_PORT=81

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

COMMAND_LINE="bench/policy-propagation.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --samples) SAMPLES="${2:?$1 needs a value}"; shift 2 ;;
    --lab) LAB="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $SAMPLES =~ ^[1-9][0-9]*$ && $SAMPLES -ge 50 ]] || die "--samples wants an integer ≥ 50"
for tool in jq ip awk sort timeout mkfifo; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ---------------------------------------------------------------- state and cleanup

LAB_UP=0
WORK="$(mktemp -d /tmp/cilb-policy-propagation.XXXXXX)"

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((LAB_UP)); then
        "$LAB_BIN" down --name "$LAB" >/dev/null 2>&1 || log "cleanup: cilium-lab down failed"
    fi
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

# ---------------------------------------------------------------- setup

require_binaries "$BUILD" "$LAB_BIN" "$BIN/cilium-agent" "$BIN/cilium-cni" "$BIN/cilium"
require_bpf_stats_off

START_EPOCH=$EPOCHREALTIME
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

for dir in /tmp/cilb-policy-propagation.*; do
    [[ -d $dir && $dir != "$WORK" ]] && rm -rf "$dir"
done
STATE="/run/cilium-lab/$LAB/state.json"
remove_leftover_lab "$LAB"

log "bringing up lab $LAB with $NODES nodes"
LAB_UP=1
"$LAB_BIN" up --name "$LAB" --nodes "$NODES" >/dev/null

# One server pod per node, the client on node1; the policy selects the servers and admits the
# client on SERVE_PORT/TCP.
"$LAB_BIN" pod add --name "$LAB" --node node1 --labels app=pprop-client pp-client >/dev/null
for ((k = 1; k <= NODES; k++)); do
    "$LAB_BIN" pod add --name "$LAB" --node "node$k" --labels app=pprop-server \
        --serve "$SERVE_PORT/tcp" "pp-server-$k" >/dev/null
done
PODS_JSON="$("$LAB_BIN" pod list --name "$LAB" -o json)"
pod_field() { jq -r --arg p "$1" --arg f "$2" '.[] | select(.name == $p) | .[$f]' <<<"$PODS_JSON"; }
CLIENT_NS="$(pod_field pp-client netns)"
CLIENT_IDENTITY="$(pod_field pp-client identity)"
[[ $CLIENT_IDENTITY =~ ^[0-9]+$ ]] || die "pp-client has no identity (got '$CLIENT_IDENTITY')"

declare -A SOCK BPF_ROOT EP_ID SERVER_IP
for ((k = 1; k <= NODES; k++)); do
    SOCK[$k]="$(jq -r --arg n "node$k" '.nodes[] | select(.name == $n) | .socket' "$STATE")"
    BPF_ROOT[$k]="$(jq -r --arg n "node$k" '.nodes[] | select(.name == $n) | .bpf_root' "$STATE")"
    EP_ID[$k]="$(lab_endpoint_id "$LAB" "node$k" "pp-server-$k")"
    SERVER_IP[$k]="$(pod_field "pp-server-$k" ip)"
    [[ -n ${EP_ID[$k]} ]] || die "no endpoint for pp-server-$k on node$k"
    wait_listen "$(pod_field "pp-server-$k" netns)" "$SERVE_PORT"
done

POLICY="$WORK/policy.yaml"
cat >"$POLICY" <<EOF
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: pprop
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: pprop-server
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: pprop-client
      toPorts:
        - ports:
            - port: "$SERVE_PORT"
              protocol: TCP
EOF

# ---------------------------------------------------------------- polling

# The client's entry in a map dump (`-o json`, pretty-printed: one object per entry, fields in
# this order, no braces inside an entry). Matched with bash's regex: a jq per poll would cost
# ten times the poll itself.
ENTRY_RE="\"policy\": \"Allow\",[^}]*\"direction\": \"Ingress\",[^}]*\"identity\": ${CLIENT_IDENTITY},[^}]*\"protocol\": 6,[^}]*\"port_range\": \\[[[:space:]]*${SERVE_PORT},[[:space:]]*${SERVE_PORT}[[:space:]]*\\]"

# enforced K: "1" when node K's server map enforces ingress and allows the client on
# SERVE_PORT/TCP, "0" when ingress is not enforced, "?" otherwise (half-written or unreadable).
enforced() {
    local dump
    dump="$(CILIUM_SOCK="${SOCK[$1]}" CILIUM_BPF_ROOT="${BPF_ROOT[$1]}" \
        "$BIN/cilium" bpf policy get "${EP_ID[$1]}" -o json 2>/dev/null)" || { echo "?"; return; }
    if [[ $dump == *'"ingress_enforced": false'* ]]; then
        echo 0
    elif [[ $dump == *'"ingress_enforced": true'* && $dump =~ $ENTRY_RE ]]; then
        echo 1
    else
        echo "?"
    fi
}

# pause: POLL_PAUSE_MS between polling rounds, without forking (a read that times out on a
# FIFO nobody writes to).
mkfifo "$WORK/tick"
exec 9<>"$WORK/tick"
pause() { read -rt "0.$(printf '%03d' "$POLL_PAUSE_MS")" -u 9 || true; }

# await WANT T0: polls the nodes round-robin until each shows WANT; prints, per node, the
# milliseconds from T0 to the end of the first poll that showed it. Also appends every poll's
# duration (µs) to $WORK/polls.
await() {
    local want="$1" t0="$2" k p0 p1 state
    local -A seen=()
    while ((${#seen[@]} < NODES)); do
        for ((k = 1; k <= NODES; k++)); do
            [[ -n ${seen[$k]:-} ]] && continue
            p0=$EPOCHREALTIME
            state="$(enforced "$k")"
            p1=$EPOCHREALTIME
            echo "$((${p1/./} - ${p0/./}))" >>"$WORK/polls"
            [[ $state == "$want" ]] && seen[$k]=$(((${p1/./} - ${t0/./}) / 1000))
        done
        (((${EPOCHREALTIME/./} - ${t0/./}) / 1000000 < SAMPLE_TIMEOUT_S)) ||
            die "nodes ${!seen[*]} of $NODES show state $want; the others not after ${SAMPLE_TIMEOUT_S} s"
        ((${#seen[@]} < NODES)) && pause
    done
    for ((k = 1; k <= NODES; k++)); do printf '%s ' "${seen[$k]}"; done
}

# probe K PORT: 0 when a TCP connect from the client to node K's server succeeds within 1 s,
# 1 when refused, 124 when it times out (dropped).
probe() {
    local rc=0
    ip netns exec "$CLIENT_NS" timeout 1 bash -c "exec 3<>/dev/tcp/${SERVER_IP[$1]}/$2" 2>/dev/null || rc=$?
    echo "$rc"
}

# ---------------------------------------------------------------- a first round, checked with traffic

for ((k = 1; k <= NODES; k++)); do
    [[ $(enforced "$k") == 0 ]] || die "node$k enforces a policy before any was applied"
    [[ $(probe "$k" "$CLOSED_PORT") == 1 ]] || die "node$k: port $CLOSED_PORT is not reachable without a policy"
done
lab_cilium "$LAB" node1 apply -f "$POLICY" >/dev/null
await 1 "$EPOCHREALTIME" >/dev/null
for ((k = 1; k <= NODES; k++)); do
    [[ $(probe "$k" "$SERVE_PORT") == 0 ]] || die "node$k: the client cannot reach port $SERVE_PORT under the policy"
    [[ $(probe "$k" "$CLOSED_PORT") == 124 ]] || die "node$k: port $CLOSED_PORT is not dropped under the policy"
done
lab_cilium "$LAB" node1 delete -f "$POLICY" >/dev/null
await 0 "$EPOCHREALTIME" >/dev/null
for ((k = 1; k <= NODES; k++)); do
    [[ $(probe "$k" "$CLOSED_PORT") == 1 ]] || die "node$k: port $CLOSED_PORT is still dropped after the delete"
done
log "traffic agrees with the maps on all $NODES nodes: enforced after apply, lifted after delete"
: >"$WORK/polls"

# ---------------------------------------------------------------- samples

APPLY_ALL=() DELETE_ALL=() APPLY_CMD=() DELETE_CMD=()
declare -A APPLY_NODE DELETE_NODE
for ((k = 1; k <= NODES; k++)); do APPLY_NODE[$k]="" DELETE_NODE[$k]=""; done

# sample apply|delete WANT: one timed change. The command runs in the background while the
# nodes are polled from the moment it starts, so a node that is done before the command exits
# is seen then. Records the command's own duration, each node's time and the slowest node's.
sample() {
    local verb="$1" want="$2" t0 t1 per pid k slowest=0
    t0=$EPOCHREALTIME
    {
        lab_cilium "$LAB" node1 "$verb" -f "$POLICY" >/dev/null
        echo "$EPOCHREALTIME" >"$WORK/command-end"
    } &
    pid=$!
    per="$(await "$want" "$t0")"
    wait "$pid" || die "cilium $verb -f failed"
    t1="$(<"$WORK/command-end")"
    read -ra per <<<"$per"
    for ((k = 1; k <= NODES; k++)); do
        if ((per[k - 1] > slowest)); then slowest=${per[k - 1]}; fi
        if [[ $verb == apply ]]; then APPLY_NODE[$k]+="${per[k - 1]} "; else DELETE_NODE[$k]+="${per[k - 1]} "; fi
    done
    if [[ $verb == apply ]]; then
        APPLY_ALL+=("$slowest") APPLY_CMD+=("$(((${t1/./} - ${t0/./}) / 1000))")
    else
        DELETE_ALL+=("$slowest") DELETE_CMD+=("$(((${t1/./} - ${t0/./}) / 1000))")
    fi
}

for ((i = 1; i <= SAMPLES; i++)); do
    sample apply 1
    sample delete 0
    if ((i % 10 == 0)); then
        log "sample $i/$SAMPLES: apply → all nodes ${APPLY_ALL[-1]} ms, delete → all nodes ${DELETE_ALL[-1]} ms"
    fi
done
mapfile -t POLLS <"$WORK/polls"

END_EPOCH=$EPOCHREALTIME
WALL_S="$(awk -v a="$START_EPOCH" -v b="$END_EPOCH" 'BEGIN {printf "%.0f", b-a}')"
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- report

# stats VALUES...: "p50 | p99 | max" in ms.
stats() { printf '%s ms | %s ms | %s ms' "$(percentile 50 "$@")" "$(percentile 99 "$@")" "$(maximum "$@")"; }
P99="$(percentile 99 "${APPLY_ALL[@]}")"
MET="$(awk -v v="$P99" -v t="$TARGET_P99_MS" 'BEGIN {print (v < t) ? "**yes**" : "**no**"}')"

REPORT="$WORK/report.md"
{
    echo "$BEGIN_MARK"
    echo
    echo "### Policy propagation: results"
    echo
    echo "- Command: \`$COMMAND_LINE\` (release build), wall time ${WALL_S} s"
    echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- Machine: $(machine_line)"
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END"
    echo "- $SAMPLES samples of each change on a $NODES-node lab (tunnel mode, etcd); percentiles by nearest rank."
    echo "- One poll of one node's map (\`cilium bpf policy get -o json\`, matched in bash), the resolution"
    echo "  of every figure together with the ${POLL_PAUSE_MS} ms pause between rounds: p50 $(fmt "$(percentile 50 "${POLLS[@]}")" 1 1000) ms,"
    echo "  p99 $(fmt "$(percentile 99 "${POLLS[@]}")" 1 1000) ms over ${#POLLS[@]} polls."
    echo
    echo "| From … until … | p50 | p99 | max | Target | Met |"
    echo "|---|---|---|---|---|---|"
    echo "| \`cilium apply -f\` on node1 → all $NODES nodes enforce | $(stats "${APPLY_ALL[@]}") | p99 < $TARGET_P99_MS ms | $MET |"
    echo "| \`cilium delete -f\` on node1 → all $NODES nodes lifted it | $(stats "${DELETE_ALL[@]}") | — | — |"
    echo "| \`cilium apply -f\` command itself (until it exits) | $(stats "${APPLY_CMD[@]}") | — | — |"
    echo "| \`cilium delete -f\` command itself | $(stats "${DELETE_CMD[@]}") | — | — |"
    echo
    echo "| Node | apply → enforced, p50 / p99 | delete → lifted, p50 / p99 |"
    echo "|---|---|---|"
    for ((k = 1; k <= NODES; k++)); do
        read -ra a <<<"${APPLY_NODE[$k]}"
        read -ra d <<<"${DELETE_NODE[$k]}"
        echo "| node$k | $(percentile 50 "${a[@]}") / $(percentile 99 "${a[@]}") ms | $(percentile 50 "${d[@]}") / $(percentile 99 "${d[@]}") ms |"
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
