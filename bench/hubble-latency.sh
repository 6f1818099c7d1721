#!/usr/bin/env bash
# Hubble relay end-to-end latency, from packet to flow on the client: a 2-node lab (tunnel
# mode, client pod on node1, server pod on node2). A probe process in the client pod keeps one
# `hubble observe -f -o json --from-pod default/client --protocol udp` stream open, then sends
# N single UDP datagrams to the server pod, each from its own source port (so each one is a new
# connection and the datapath traces it), at random 20–60 ms gaps, and timestamps every flow
# line as it arrives. Latency = arrival of the probe's flow line − the send, both on the probe
# process's monotonic clock. Measured three ways: straight from node1's agent (no relay),
# through the lab's relay (default --sort-buffer-drain-timeout-ms 100) and through a second
# relay started with --sort-buffer-drain-timeout-ms 10.
#
# Usage (as root, from anywhere):
#   bench/hubble-latency.sh [--probes N] [--no-build] [--write-docs]
#
# Everything it creates — lab `hblat` (namespaces cilab-hblat-*) and the extra relay — is
# removed on exit, also on failure or Ctrl-C. Output: a Markdown section on stdout; with
# --write-docs it also replaces that section in docs/benchmarks.md (between its markers).

set -Eeuo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DOC="$ROOT/docs/benchmarks.md"
BEGIN_MARK='<!-- BEGIN bench/hubble-latency.sh (generated, do not edit by hand) -->'
END_MARK='<!-- END bench/hubble-latency.sh -->'

PROBES=200
BUILD=1
WRITE_DOCS=0
LAB=hblat
FAST_DRAIN_MS=10
UDP_PORT=9999

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

COMMAND_LINE="bench/hubble-latency.sh${*:+ $*}"
while (($#)); do
    case "$1" in
    --probes) PROBES="${2:?$1 needs a value}"; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --write-docs) WRITE_DOCS=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run as root"
[[ $PROBES =~ ^[1-9][0-9]*$ ]] || die "--probes wants a positive integer"
command -v python3 >/dev/null || die "python3 is needed for the probe"

SERVER_PIDS=()
WORK="$(mktemp -d /tmp/cilb-hblat.XXXXXX)"
# shellcheck disable=SC2317 # run by the traps install_traps sets
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    stop_servers
    [[ -e /run/cilium-lab/$LAB/state.json ]] && "$LAB_BIN" down --name "$LAB" >/dev/null 2>&1
    rm -rf "$WORK"
    exit "$rc"
}
install_traps

require_binaries "$BUILD" "$LAB_BIN" "$BIN/cilium-agent" "$BIN/hubble-relay" "$BIN/hubble"
require_bpf_stats_off
LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

[[ -e /run/cilium-lab/$LAB/state.json ]] && "$LAB_BIN" down --name "$LAB" >/dev/null
log "$LAB: bringing up 2 nodes"
"$LAB_BIN" up --name "$LAB" --nodes 2 >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node1 client >/dev/null
"$LAB_BIN" pod add --name "$LAB" --node node2 server >/dev/null
STATE="/run/cilium-lab/$LAB/state.json"
pods="$("$LAB_BIN" pod list --name "$LAB" -o json)"
CLIENT_NS="$(jq -r '.[] | select(.name=="client") | .netns' <<<"$pods")"
SERVER_IP="$(jq -r '.[] | select(.name=="server") | .ip' <<<"$pods")"
NODE1_HUBBLE="$(dirname "$(jq -r '.nodes[] | select(.name=="node1") | .socket' "$STATE")")/hubble.sock"
RELAY_SOCK="/run/cilium-lab/$LAB/relay/hubble-relay.sock"
FAST_SOCK="$WORK/relay-fast.sock"

log "starting a second relay with --sort-buffer-drain-timeout-ms $FAST_DRAIN_MS"
start_server "$(jq -r .etcd.netns "$STATE")" "$BIN/hubble-relay" \
    --kvstore-endpoints "$(jq -r .etcd.client_url "$STATE")" --listen-address "" \
    --unix-socket "$FAST_SOCK" --sort-buffer-drain-timeout-ms "$FAST_DRAIN_MS"
for ((i = 0; i < 100; i++)); do
    [[ -S $FAST_SOCK ]] && break
    sleep 0.05
done
[[ -S $FAST_SOCK ]] || die "the second relay did not create $FAST_SOCK within 5 s"

# The probe: runs in the client pod's netns (the unix sockets are reachable from any netns).
# Prints one JSON object: per probe, the latency to the first flow line and to the last of
# the expected lines (EXPECT flows per probe: 1 from a single agent, 2 through a relay).
cat >"$WORK/probe.py" <<'EOF'
import json, random, socket, subprocess, sys, threading, time

hubble, server, dst_ip, dst_port, count, expect, base_port = sys.argv[1:8]
dst = (dst_ip, int(dst_port))
count, expect, base_port = int(count), int(expect), int(base_port)
arrivals = {}  # source port -> [arrival times]
lock = threading.Lock()
proc = subprocess.Popen(
    [hubble, "--server", server, "observe", "-f", "-o", "json",
     "--from-pod", "default/client", "--protocol", "udp"],
    stdout=subprocess.PIPE, text=True, bufsize=1)

def read():
    for line in proc.stdout:
        now = time.monotonic()
        try:
            port = json.loads(line)["flow"]["l4"]["UDP"]["source_port"]
        except (ValueError, KeyError):
            continue
        with lock:
            arrivals.setdefault(port, []).append(now)

threading.Thread(target=read, daemon=True).start()

def send(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", port))
    t = time.monotonic()
    s.sendto(b"probe", dst)
    s.close()
    return t

def seen(port, n):
    with lock:
        return len(arrivals.get(port, [])) >= n

# Warm up until the stream delivers (bounded): the first probe may race the subscription.
port = base_port
deadline = time.monotonic() + 10
while True:
    send(port)
    end = time.monotonic() + 0.5
    while time.monotonic() < end and not seen(port, 1):
        time.sleep(0.005)
    if seen(port, 1):
        break
    if time.monotonic() > deadline:
        sys.exit("no flow reached the client within 10 s of warm-up probes")
    port += 1

sent = {}
for i in range(count):
    port += 1
    sent[port] = send(port)
    time.sleep(random.uniform(0.020, 0.060))
deadline = time.monotonic() + 5
while time.monotonic() < deadline and not all(seen(p, expect) for p in sent):
    time.sleep(0.01)
proc.terminate()
proc.wait()
first, last, missing = [], [], 0
with lock:
    for p, t in sent.items():
        a = arrivals.get(p, [])
        if len(a) < expect:
            missing += 1
            continue
        first.append(1000 * (a[0] - t))
        last.append(1000 * (a[expect - 1] - t))
print(json.dumps({"first_ms": first, "last_ms": last, "missing": missing}))
EOF

# probe NAME SOCKET EXPECT BASE_PORT: one run, its JSON in $WORK/NAME.json.
probe() {
    log "$1: $PROBES probes"
    timeout $((PROBES / 10 + 60)) ip netns exec "$CLIENT_NS" python3 "$WORK/probe.py" "$BIN/hubble" \
        "unix://$2" "$SERVER_IP" "$UDP_PORT" "$PROBES" "$3" "$4" >"$WORK/$1.json"
}
probe agent "$NODE1_HUBBLE" 1 20000
probe relay "$RELAY_SOCK" 2 30000
probe fast "$FAST_SOCK" 2 40000
LOAD_END="$(cut -d' ' -f1-3 /proc/loadavg)"

# cells NAME KEY: "p50 | p99 | max" in ms of the run's KEY latencies.
cells() {
    local -a v
    mapfile -t v < <(jq -r ".$2[]" "$WORK/$1.json")
    ((${#v[@]})) || die "$1: no probe produced its flows"
    printf '%s | %s | %s' "$(fmt "$(percentile 50 "${v[@]}")" 1)" \
        "$(fmt "$(percentile 99 "${v[@]}")" 1)" "$(fmt "$(maximum "${v[@]}")" 1)"
}
missing() { jq -r .missing "$WORK/$1.json"; }

REPORT="$WORK/report.md"
{
    echo "$BEGIN_MARK"
    echo "### Hubble end-to-end latency, packet to flow on the client"
    echo
    echo "\`$COMMAND_LINE\` on $(date -u +%Y-%m-%d), $(machine_line); load average $LOAD_START at the start,"
    echo "$LOAD_END at the end (the machine is shared). One 2-node lab (tunnel mode), client pod on node1,"
    echo "server pod on node2. A probe in the client pod keeps \`hubble observe -f -o json --from-pod default/client"
    echo "--protocol udp\` open and sends $PROBES single UDP datagrams to the server pod, each from a new source port"
    echo "(a new connection, so each is traced), 20–60 ms apart; latency = the flow line's arrival at the"
    echo "client − the send, on one clock. Each datagram gives two flows through the relay: node1's"
    echo "\`to-overlay\` and node2's \`to-endpoint\`. Nearest-rank percentiles, ms."
    echo
    echo "| Path | First flow p50 | p99 | max | Both nodes' flows p50 | p99 | max | Probes without their flows |"
    echo "|---|---|---|---|---|---|---|---|"
    echo "| node1's agent directly (no relay) | $(cells agent first_ms) | — | — | — | $(missing agent) |"
    echo "| Relay, default sort-buffer drain timeout (100 ms) | $(cells relay first_ms) | $(cells relay last_ms) | $(missing relay) |"
    echo "| Relay, \`--sort-buffer-drain-timeout-ms $FAST_DRAIN_MS\` | $(cells fast first_ms) | $(cells fast last_ms) | $(missing fast) |"
    echo "$END_MARK"
} >"$REPORT"
cat "$REPORT"
((WRITE_DOCS)) && write_docs_section "$DOC" "$REPORT" "$BEGIN_MARK" "$END_MARK"
exit 0
