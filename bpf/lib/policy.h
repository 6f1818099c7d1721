/* SPDX-License-Identifier: Apache-2.0 */
/*
 * policy.h - per-endpoint policy enforcement: the endpoint's policy map
 * (cilium_policy_v2, pinned per endpoint as cilium_policy_v2_<id 5 digits>
 * by the loader), the node-wide enforcement switches
 * (cilium_policy_enforcement, indexed by endpoint id), the lookup and the
 * policy-verdict notification.
 *
 * Only new connections are checked: replies and packets of established
 * connections pass on the strength of their conntrack entry, so removing
 * an entry stops new connections but not the ones it allowed.
 */
#pragma once

#include "common.h"
#include "drop.h"
#include "events.h"
#include "conntrack.h"

#define POLICY_MAP_SIZE		16384
/* Key bits after the trie header: identity, direction, protocol, port. */
#define POLICY_FULL_PREFIX	64
/* Prefix bits of the identity and direction: every entry has at least these. */
#define POLICY_IDENTITY_PREFIX	40
/* L4 bits of a prefix that names the protocol but not the port. */
#define LPM_PROTO_PREFIX_BITS	8

/* cilium_policy_enforcement flags. */
#define POLICY_F_INGRESS	1	/* ingress enforced */
#define POLICY_F_EGRESS		2	/* egress enforced */

/* Match types reported in policy verdicts (Cilium's POLICY_MATCH_*). */
#define POLICY_MATCH_NONE	0
#define POLICY_MATCH_L3_ONLY	1
#define POLICY_MATCH_L3_L4	2
#define POLICY_MATCH_L4_ONLY	3
#define POLICY_MATCH_ALL	4
#define POLICY_MATCH_L3_PROTO	5
#define POLICY_MATCH_PROTO_ONLY	6

#define CILIUM_NOTIFY_POLICY_VERDICT	5
/* Layout version of struct policy_verdict_notify as emitted here. */
#define NOTIFY_POLICY_VER	1

struct policy_key {
	struct bpf_lpm_trie_key_hdr lpm_key;
	__u32	sec_label;	/* remote identity, 0 = any */
	__u8	egress:1,
		pad:7;
	__u8	protocol;	/* 0 = any (only with the port wildcarded) */
	__be16	dport;		/* prefix-wildcarded for ranges */
};

struct policy_entry {
	__be16	proxy_port;
	__u8	deny:1,
		reserved:2,
		lpm_prefix_length:5;	/* L4 bits of the prefix, 0..24 */
	__u8	auth_type:7,
		has_explicit_auth_type:1;
	__u8	proxy_port_priority;
	__u8	pad1;
	__u16	pad2;
	__u32	cookie;
};

/* Created unpinned here; the loader pins one instance per endpoint. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_entry);
	__uint(max_entries, POLICY_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} cilium_policy_v2 SEC(".maps");

/* Indexed by endpoint id: POLICY_F_* of that endpoint (0 = not enforced). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, POLICY_PROG_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_policy_enforcement SEC(".maps");

struct policy_verdict_notify {
	NOTIFY_CAPTURE_HDR
	__u32	remote_label;
	__s32	verdict;	/* 0 allowed, else -DROP_* */
	__u16	dst_port;	/* host byte order */
	__u16	src_port;	/* host byte order */
	__u8	proto;
	__u8	dir;		/* METRIC_INGRESS or METRIC_EGRESS */
	__u8	match_type;
	__u8	audited;
	__u8	auth_type;
	__u8	pad[3];
	__u32	cookie;
};

struct policy_verdict_record {
	struct policy_verdict_notify	msg;
	__u8				payload[TRACE_PAYLOAD_LEN];
};

/**
 * policy_enforced - whether endpoint @ep_id enforces policy in @flag
 * @ep_id: endpoint id
 * @flag: POLICY_F_INGRESS or POLICY_F_EGRESS
 */
static __always_inline bool policy_enforced(__u32 ep_id, __u32 flag)
{
	__u32 *flags = bpf_map_lookup_elem(&cilium_policy_enforcement, &ep_id);

	return flags && (*flags & flag);
}

static __always_inline __u8 policy_match_type(const struct policy_entry *e,
					      bool l3)
{
	if (e->lpm_prefix_length == 0)
		return l3 ? POLICY_MATCH_L3_ONLY : POLICY_MATCH_ALL;
	if (e->lpm_prefix_length <= LPM_PROTO_PREFIX_BITS)
		return l3 ? POLICY_MATCH_L3_PROTO : POLICY_MATCH_PROTO_ONLY;
	return l3 ? POLICY_MATCH_L3_L4 : POLICY_MATCH_L4_ONLY;
}

/**
 * policy_can_access - look a new connection up in the endpoint's policy
 * @remote_id: identity of the other end
 * @egress: true for the endpoint's egress, false for its ingress
 * @proto: IP protocol
 * @dport: destination port, network byte order (0 for portless protocols)
 * @e: receives the deciding entry (NULL when none matched)
 * @match_type: receives POLICY_MATCH_*
 *
 * The identity's own entry is looked up first, then the any-identity
 * (L4-only) entry. A deny wins; otherwise the any-identity entry wins when
 * there is no identity entry, when its proxy port priority is higher, or,
 * at equal priority, when its L4 prefix is longer.
 *
 * Returns 0 (allowed), DROP_POLICY (nothing matched) or DROP_POLICY_DENY.
 */
static __always_inline int policy_can_access(__u32 remote_id, bool egress,
					     __u8 proto, __be16 dport,
					     const struct policy_entry **e,
					     __u8 *match_type)
{
	struct policy_key key = {
		.lpm_key.prefixlen = POLICY_FULL_PREFIX,
		.sec_label = remote_id,
		.egress = egress,
		.protocol = proto,
		.dport = dport,
	};
	const struct policy_entry *l3, *l4;

	*e = NULL;
	*match_type = POLICY_MATCH_NONE;
	l3 = bpf_map_lookup_elem(&cilium_policy_v2, &key);
	if (l3 && l3->deny) {
		*e = l3;
		*match_type = policy_match_type(l3, true);
		return DROP_POLICY_DENY;
	}
	key.sec_label = 0;
	l4 = bpf_map_lookup_elem(&cilium_policy_v2, &key);
	if (l4 && (l4->deny || !l3 ||
		   l4->proxy_port_priority > l3->proxy_port_priority ||
		   (l4->proxy_port_priority == l3->proxy_port_priority &&
		    l4->lpm_prefix_length > l3->lpm_prefix_length))) {
		*e = l4;
		*match_type = policy_match_type(l4, false);
		return l4->deny ? DROP_POLICY_DENY : 0;
	}
	if (l3) {
		*e = l3;
		*match_type = policy_match_type(l3, true);
		return 0;
	}
	return DROP_POLICY;
}

/**
 * send_policy_verdict_notify - report the policy decision on a new connection
 * @ctx: packet context
 * @source: endpoint id whose policy decided
 * @remote_id: identity of the other end
 * @sport: source port, network byte order
 * @dport: destination port, network byte order
 * @proto: IP protocol
 * @dir: METRIC_INGRESS or METRIC_EGRESS
 * @verdict: 0 or the negative DROP_* code
 * @e: the deciding entry, NULL when none matched
 * @match_type: POLICY_MATCH_*
 */
static __always_inline void
send_policy_verdict_notify(struct __sk_buff *ctx, __u16 source, __u32 remote_id,
			   __be16 sport, __be16 dport, __u8 proto, __u8 dir,
			   int verdict, const struct policy_entry *e,
			   __u8 match_type)
{
	struct policy_verdict_record *rec;

	rec = bpf_ringbuf_reserve(&cilium_events, sizeof(*rec), 0);
	if (!rec)
		return;
	rec->msg.type = CILIUM_NOTIFY_POLICY_VERDICT;
	rec->msg.subtype = 0;
	rec->msg.source = source;
	rec->msg.hash = bpf_get_hash_recalc(ctx);
	rec->msg.len_orig = ctx->len;
	rec->msg.version = NOTIFY_POLICY_VER;
	rec->msg.remote_label = remote_id;
	rec->msg.verdict = verdict;
	rec->msg.dst_port = bpf_ntohs(dport);
	rec->msg.src_port = bpf_ntohs(sport);
	rec->msg.proto = proto;
	rec->msg.dir = dir;
	rec->msg.match_type = match_type;
	rec->msg.audited = 0;
	rec->msg.auth_type = e ? e->auth_type : 0;
	rec->msg.pad[0] = 0;
	rec->msg.pad[1] = 0;
	rec->msg.pad[2] = 0;
	rec->msg.cookie = e ? e->cookie : 0;
	rec->msg.len_cap = notify_capture(ctx, rec->payload);
	events_submit(rec);
}

/**
 * policy_check_new4 - enforce endpoint @ep_id's policy on a new connection
 * @ctx: packet context
 * @ep_id: endpoint whose policy applies
 * @remote_id: identity of the other end
 * @egress: true when the endpoint opens the connection
 * @pkt: the packet as conntrack extracted it
 *
 * Does nothing (returns 0) when the endpoint does not enforce policy in
 * that direction; otherwise reports the verdict and returns 0,
 * DROP_POLICY or DROP_POLICY_DENY. Ports count for TCP, UDP and SCTP only.
 */
static __always_inline int policy_check_new4(struct __sk_buff *ctx, __u16 ep_id,
					     __u32 remote_id, bool egress,
					     const struct ct_packet *pkt)
{
	const struct policy_entry *e;
	__u8 proto = pkt->tuple.nexthdr;
	__be16 dport = 0, sport = 0;
	__u8 match_type;
	int verdict;

	if (!policy_enforced(ep_id, egress ? POLICY_F_EGRESS : POLICY_F_INGRESS))
		return 0;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
	    proto == IPPROTO_SCTP) {
		dport = pkt->tuple.dport;
		sport = pkt->tuple.sport;
	}
	verdict = policy_can_access(remote_id, egress, proto, dport, &e,
				    &match_type);
	send_policy_verdict_notify(ctx, ep_id, remote_id, sport, dport, proto,
				   egress ? METRIC_EGRESS : METRIC_INGRESS,
				   verdict, e, match_type);
	return verdict;
}
