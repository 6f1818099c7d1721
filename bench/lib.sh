#!/usr/bin/env bash
# Helpers shared by the benchmark scripts (sourced, not run). They use the caller's globals:
# WORK (scratch directory), SERVER_PIDS (array of background servers) and TARGET_RATIO (the
# ours/baseline target).

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
