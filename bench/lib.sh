#!/usr/bin/env bash
# Helpers shared by the benchmark scripts (sourced, not run). They use the caller's globals
# WORK (scratch directory), SERVER_PIDS (array of background servers) and TARGET_RATIO (the
# ours/baseline target), and set the paths every script uses:

# The repository, its release binaries, the lab and the traffic tool.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/target/release"
LAB_BIN="$BIN/cilium-lab"
NETBENCH="$BIN/netbench"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

die() { log "error: $*"; exit 1; }

in_ns() { local ns="$1"; shift; ip netns exec "$ns" "$@"; }

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

minimum() { printf '%s\n' "$@" | sort -g | head -n1; }

maximum() { printf '%s\n' "$@" | sort -g | tail -n1; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b>0) ? a/b : 0}'; }

fmt() { awk -v v="$1" -v d="$2" -v s="${3:-1}" 'BEGIN {printf "%.*f", d, v/s}'; }

# wait_listen NS PORT: bounded poll until something listens on TCP PORT in NS.
wait_listen() {
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -n "$(in_ns "$1" ss -Hltn "sport = :$2")" ]] && return 0
        sleep 0.05
    done
    die "nothing listens on port $2 in $1 after 5 s"
}

# start_server NS CMD...: runs CMD in NS in the background and remembers its pid. `ip netns
# exec` and `taskset` exec what follows, so the pid is the server's own.
start_server() {
    local ns="$1"; shift
    ip netns exec "$ns" "$@" >>"$WORK/servers.log" 2>&1 &
    SERVER_PIDS+=("$!")
}

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

# Leftovers of a run that could not clean up (killed with SIGKILL): the servers it started in
# its own namespaces, the namespaces, the lab.
kill_in_ns() {
    local ns="$1" comm_re="$2" pid
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
        if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" =~ $comm_re ]]; then
            log "stopping leftover $(cat "/proc/$pid/comm") (pid $pid) in $ns"
            kill "$pid" 2>/dev/null || true
        fi
    done
}

# install_traps: the caller's `cleanup` on exit (it sees the exit status in $?), a log line
# naming the command that failed, and an exit on Ctrl-C or SIGTERM, which runs `cleanup` too.
install_traps() {
    trap cleanup EXIT
    trap 'log "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# require_binaries BUILD BIN...: builds the release binaries first when BUILD is 1, then fails
# unless every BIN is there.
require_binaries() {
    local build="$1" bin; shift
    if ((build)); then
        log "building release binaries"
        (cd "$ROOT" && cargo build --release --workspace --bins --quiet) || die "cargo build failed"
    fi
    for bin in "$@"; do
        [[ -x $bin ]] || die "$bin is missing; build with cargo build --release --workspace --bins"
    done
}

# require_bpf_stats_off: fails while kernel.bpf_stats_enabled is on (bench/prog-cost.sh turns it
# on for its runs; a run killed with SIGKILL leaves it on): it adds two clock reads to every BPF
# program run, which the baselines without BPF do not pay.
require_bpf_stats_off() {
    [[ $(sysctl -n kernel.bpf_stats_enabled) == 0 ]] ||
        die "kernel.bpf_stats_enabled is on and would slow our datapath down against the baseline;" \
            "switch it off: sysctl -w kernel.bpf_stats_enabled=0"
}

# remove_leftover_lab LAB [COMM_RE]: the lab an interrupted run left behind, if any: first the
# servers (commands matching COMM_RE) in its pods, then the lab itself.
remove_leftover_lab() {
    local lab="$1" comm_re="${2:-}" state="/run/cilium-lab/$1/state.json" ns
    [[ -e $state ]] || ip netns list | grep -q "^cilab-$lab-" || return 0
    if [[ -n $comm_re ]]; then
        for ns in $(jq -r '.pods[]?.netns' "$state" 2>/dev/null); do
            kill_in_ns "$ns" "$comm_re"
        done
    fi
    log "removing leftover lab $lab"
    "$LAB_BIN" down --name "$lab" >/dev/null
}

# Interrupts that wake another context: irq_work (IWI) and function-call IPIs (CAL), all CPUs.
# The counters are machine-wide, so other work on the machine adds to them.
wakeup_irqs() { awk '$1 == "IWI:" || $1 == "CAL:" {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i} END {print n + 0}' /proc/interrupts; }

# Odd repetitions run ours first, even ones the baseline first (ABBA), so drift in the
# machine's load falls on both sides alike.
order() { if (($1 % 2)); then echo "ours base"; else echo "base ours"; fi; }

# row NAME UNIT SCALE DECIMALS TARGET CHECK OURS_VALUES BASE_VALUES: one table row with medians
# and min–max; CHECK is `ratio` (ratio against TARGET_RATIO), `info` (ratio, no target) or
# `none` (no ratio).
row() {
    local name="$1" unit="${2:+ $2}" scale="$3" dec="$4" target="$5" check="$6"
    local -a o b
    read -ra o <<<"$7"
    read -ra b <<<"$8"
    local mo mb r met="—"
    mo="$(median "${o[@]}")" mb="$(median "${b[@]}")" r="$(ratio "$mo" "$mb")"
    case "$check" in
    ratio) met="$(awk -v r="$r" -v t="$TARGET_RATIO" 'BEGIN {print (r >= t) ? "**yes**" : "**no**"}')" ;;
    none) r="—" ;;
    esac
    cell() { printf '%s%s (%s–%s)' "$(fmt "$(median "$@")" "$dec" "$scale")" "$unit" \
        "$(fmt "$(minimum "$@")" "$dec" "$scale")" "$(fmt "$(maximum "$@")" "$dec" "$scale")"; }
    printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$(cell "${o[@]}")" "$(cell "${b[@]}")" \
        "$r" "$target" "$met"
}

# ---------------------------------------------------------------- shared by the policy benchmarks

# Seconds between two $EPOCHREALTIME values.
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# Nearest-rank percentile: percentile P VALUES...
percentile() {
    local p="$1"; shift
    printf '%s\n' "$@" | sort -g | awk -v p="$p" '{v[NR]=$1} END {r=int(p*NR/100); if (r<p*NR/100) r++; if (r<1) r=1; print v[r]}'
}

# spread DECIMALS SCALE UNIT VALUES...: "median UNIT (min–max)", every value divided by SCALE.
spread() {
    local dec="$1" scale="$2" unit="${3:+ $3}"; shift 3
    printf '%s%s (%s–%s)' "$(fmt "$(median "$@")" "$dec" "$scale")" "$unit" \
        "$(fmt "$(minimum "$@")" "$dec" "$scale")" "$(fmt "$(maximum "$@")" "$dec" "$scale")"
}

# The machine in one line: vCPUs, VM or not, CPU model, kernel, memory.
machine_line() {
    local virt="bare metal"
    grep -qw hypervisor /proc/cpuinfo && virt="VM"
    printf '%s vCPU %s (%s), kernel %s, %s' "$(nproc)" "$virt" \
        "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" "$(uname -r)" \
        "$(awk '/MemTotal/ {printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo)"
}

# lab_cilium LAB NODE ARGS...: runs `$BIN/cilium ARGS...` against NODE's agent in lab LAB (its
# socket and bpffs root from the lab's state file), as `cilium-lab node exec` would, without
# the two extra execs: the CLI only needs the unix socket and the pins.
lab_cilium() {
    local lab="$1" node="$2" state sock root; shift 2
    state="/run/cilium-lab/$lab/state.json"
    sock="$(jq -r --arg n "$node" '.nodes[] | select(.name == $n) | .socket' "$state")"
    root="$(jq -r --arg n "$node" '.nodes[] | select(.name == $n) | .bpf_root' "$state")"
    [[ -n $sock && -n $root ]] || die "lab $lab has no node $node"
    CILIUM_SOCK="$sock" CILIUM_BPF_ROOT="$root" "$BIN/cilium" "$@"
}

# lab_endpoint_id LAB NODE POD: the endpoint ID of pod POD (namespace default) on NODE.
lab_endpoint_id() {
    lab_cilium "$1" "$2" endpoint list -o json |
        jq -r --arg p "$3" '.[] | select(.status."external-identifiers"."k8s-pod-name" == $p) | .id'
}

# netbench_run rr|crr CLIENT_NS ADDR:PORT SECS: one netbench run from CLIENT_NS, pinned to vCPU
# 0 like its server; prints netbench's JSON (fails when netbench does).
netbench_run() {
    timeout $(($4 + 20)) ip netns exec "$2" taskset -c 0 "$NETBENCH" "$1" --addr "$3" --duration "$4"
}

# routed_baseline ROUTER GW POD=IP...: the plain-kernel baseline of a lab node, no BPF: router
# namespace ROUTER with IPv4 forwarding and GW/32 on a cilb_host/cilb_net veth pair (as ours
# has its router IP on cilium_host), and one namespace per POD joined to it by a veth pair (MTU
# 1500), addressed like a lab pod: IP/32 on eth0, a link route to GW, default route via GW,
# IPv6 off; the router has a /32 route per pod on the pod's veth (cilb-p1, cilb-p2, ...).
routed_baseline() {
    local router="$1" gw="$2" k=0 pod ns ip; shift 2
    ip netns add "$router"
    in_ns "$router" ip link set lo up
    in_ns "$router" sysctl -qw net.ipv4.ip_forward=1
    in_ns "$router" ip link add cilb_host type veth peer name cilb_net
    in_ns "$router" ip addr add "$gw/32" dev cilb_host
    in_ns "$router" ip link set cilb_net up
    in_ns "$router" ip link set cilb_host up
    for pod in "$@"; do
        ns="${pod%%=*}" ip="${pod#*=}" k=$((k + 1))
        ip netns add "$ns"
        in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        in_ns "$router" ip link add "cilb-p$k" mtu 1500 type veth peer name eth0 mtu 1500 netns "$ns"
        in_ns "$ns" ip link set lo up
        in_ns "$ns" ip link set eth0 up
        in_ns "$ns" ip addr add "$ip/32" dev eth0
        in_ns "$ns" ip route add "$gw/32" dev eth0 scope link
        in_ns "$ns" ip route add default via "$gw" dev eth0
        in_ns "$router" ip link set "cilb-p$k" up
        in_ns "$router" ip route add "$ip/32" dev "cilb-p$k" scope link
    done
}

# write_docs_section DOC REPORT BEGIN_MARK END_MARK: replaces the lines between the markers in
# DOC (markers included) with REPORT, or appends REPORT when DOC has no such section yet. The
# new text is built in $WORK and copied over DOC in one go.
write_docs_section() {
    local doc="$1" report="$2" begin="$3" end="$4" tmp="$WORK/doc.md"
    mkdir -p "$(dirname "$doc")"
    [[ -e $doc ]] || printf '# Benchmarks\n' >"$doc"
    if grep -qF "$begin" "$doc" && grep -qF "$end" "$doc"; then
        awk -v begin="$begin" -v end="$end" -v report="$report" '
            $0 == begin { while ((getline line < report) > 0) print line; skip = 1; next }
            $0 == end { skip = 0; next }
            !skip { print }' "$doc" >"$tmp"
    else
        { cat "$doc"; echo; cat "$report"; } >"$tmp"
    fi
    cat "$tmp" >"$doc"
}
