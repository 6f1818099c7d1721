/* SPDX-License-Identifier: Apache-2.0 */
/*
 * layout.h - compile-time checks of the structures shared with user space.
 *
 * The Rust mirrors in crates/datapath/src/abi.rs assert the same sizes and
 * offsets in their unit tests: a change here must be made there too, and
 * either side fails its build or tests until both agree.
 */
#pragma once

#include <stddef.h>

#include "maps.h"
#include "ipcache.h"
#include "conntrack.h"
#include "metrics.h"
#include "trace.h"
#include "trace_sock.h"
#include "drop.h"
#include "policy.h"

#define ASSERT_LAYOUT(type, size) \
	_Static_assert(sizeof(type) == (size), #type " size changed: update abi.rs")
#define ASSERT_OFFSET(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), \
		       #type "." #field " moved: update abi.rs")

ASSERT_LAYOUT(union macaddr, 8);

ASSERT_LAYOUT(struct endpoint_key, 20);
ASSERT_OFFSET(struct endpoint_key, family, 16);
ASSERT_OFFSET(struct endpoint_key, key, 17);
ASSERT_OFFSET(struct endpoint_key, cluster_id, 18);

ASSERT_LAYOUT(struct endpoint_info, 44);
ASSERT_OFFSET(struct endpoint_info, unused, 4);
ASSERT_OFFSET(struct endpoint_info, lxc_id, 6);
ASSERT_OFFSET(struct endpoint_info, flags, 8);
ASSERT_OFFSET(struct endpoint_info, mac, 12);
ASSERT_OFFSET(struct endpoint_info, node_mac, 20);
ASSERT_OFFSET(struct endpoint_info, pad, 28);

ASSERT_LAYOUT(struct ipcache_key, 24);
ASSERT_OFFSET(struct ipcache_key, cluster_id, 4);
ASSERT_OFFSET(struct ipcache_key, pad1, 6);
ASSERT_OFFSET(struct ipcache_key, family, 7);
ASSERT_OFFSET(struct ipcache_key, ip4, 8);
ASSERT_OFFSET(struct ipcache_key, ip6, 8);

ASSERT_LAYOUT(struct remote_endpoint_info, 12);
ASSERT_OFFSET(struct remote_endpoint_info, tunnel_endpoint, 4);
ASSERT_OFFSET(struct remote_endpoint_info, node_id, 8);
ASSERT_OFFSET(struct remote_endpoint_info, key, 10);
ASSERT_OFFSET(struct remote_endpoint_info, flags, 11);

ASSERT_LAYOUT(struct ipv4_ct_tuple, 14);
ASSERT_OFFSET(struct ipv4_ct_tuple, saddr, 4);
ASSERT_OFFSET(struct ipv4_ct_tuple, dport, 8);
ASSERT_OFFSET(struct ipv4_ct_tuple, sport, 10);
ASSERT_OFFSET(struct ipv4_ct_tuple, nexthdr, 12);
ASSERT_OFFSET(struct ipv4_ct_tuple, flags, 13);

ASSERT_LAYOUT(struct ct_entry, 56);
ASSERT_OFFSET(struct ct_entry, rx_bytes, 8);
ASSERT_OFFSET(struct ct_entry, tx_packets, 16);
ASSERT_OFFSET(struct ct_entry, tx_bytes, 24);
ASSERT_OFFSET(struct ct_entry, lifetime, 32);
ASSERT_OFFSET(struct ct_entry, rev_nat_index, 38);
ASSERT_OFFSET(struct ct_entry, ifindex, 40);
ASSERT_OFFSET(struct ct_entry, tx_flags_seen, 42);
ASSERT_OFFSET(struct ct_entry, rx_flags_seen, 43);
ASSERT_OFFSET(struct ct_entry, src_sec_id, 44);
ASSERT_OFFSET(struct ct_entry, last_tx_report, 48);
ASSERT_OFFSET(struct ct_entry, last_rx_report, 52);

ASSERT_LAYOUT(struct metrics_key, 8);
ASSERT_OFFSET(struct metrics_key, reserved, 2);
ASSERT_LAYOUT(struct metrics_value, 16);

ASSERT_LAYOUT(struct trace_notify, 48);
ASSERT_OFFSET(struct trace_notify, len_orig, 8);
ASSERT_OFFSET(struct trace_notify, len_cap, 12);
ASSERT_OFFSET(struct trace_notify, version, 14);
ASSERT_OFFSET(struct trace_notify, src_label, 16);
ASSERT_OFFSET(struct trace_notify, dst_label, 20);
ASSERT_OFFSET(struct trace_notify, dst_id, 24);
ASSERT_OFFSET(struct trace_notify, reason, 26);
ASSERT_OFFSET(struct trace_notify, flags, 27);
ASSERT_OFFSET(struct trace_notify, ifindex, 28);
ASSERT_OFFSET(struct trace_notify, orig_ip4, 32);
ASSERT_OFFSET(struct trace_notify, rev_nat, 36);

/* Mirrored in crates/datapath/src/events.rs (TraceSockNotify). */
ASSERT_LAYOUT(struct trace_sock_notify, 64);
ASSERT_OFFSET(struct trace_sock_notify, xlate_point, 1);
ASSERT_OFFSET(struct trace_sock_notify, l4_proto, 2);
ASSERT_OFFSET(struct trace_sock_notify, flags, 3);
ASSERT_OFFSET(struct trace_sock_notify, dst_port, 4);
ASSERT_OFFSET(struct trace_sock_notify, sock_cookie, 8);
ASSERT_OFFSET(struct trace_sock_notify, cgroup_id, 16);
ASSERT_OFFSET(struct trace_sock_notify, dst_ip4, 24);
ASSERT_OFFSET(struct trace_sock_notify, orig_ip4, 40);
ASSERT_OFFSET(struct trace_sock_notify, orig_port, 44);
ASSERT_OFFSET(struct trace_sock_notify, rev_nat, 46);
ASSERT_OFFSET(struct trace_sock_notify, src_ip4, 48);
ASSERT_OFFSET(struct trace_sock_notify, src_port, 52);
ASSERT_OFFSET(struct trace_sock_notify, netns_cookie, 56);

ASSERT_LAYOUT(struct drop_notify, 36);
ASSERT_OFFSET(struct drop_notify, src_label, 16);
ASSERT_OFFSET(struct drop_notify, dst_label, 20);
ASSERT_OFFSET(struct drop_notify, dst_id, 24);
ASSERT_OFFSET(struct drop_notify, line, 28);
ASSERT_OFFSET(struct drop_notify, file, 30);
ASSERT_OFFSET(struct drop_notify, ext_error, 31);
ASSERT_OFFSET(struct drop_notify, ifindex, 32);

ASSERT_LAYOUT(struct policy_key, 12);
ASSERT_OFFSET(struct policy_key, sec_label, 4);
ASSERT_OFFSET(struct policy_key, protocol, 9);
ASSERT_OFFSET(struct policy_key, dport, 10);
_Static_assert(POLICY_FULL_PREFIX ==
	       8 * (sizeof(struct policy_key) - sizeof(struct bpf_lpm_trie_key_hdr)),
	       "POLICY_FULL_PREFIX must cover the whole key");

ASSERT_LAYOUT(struct policy_entry, 12);
ASSERT_OFFSET(struct policy_entry, proxy_port_priority, 4);
ASSERT_OFFSET(struct policy_entry, pad1, 5);
ASSERT_OFFSET(struct policy_entry, pad2, 6);
ASSERT_OFFSET(struct policy_entry, cookie, 8);

ASSERT_LAYOUT(struct policy_verdict_notify, 40);
ASSERT_OFFSET(struct policy_verdict_notify, remote_label, 16);
ASSERT_OFFSET(struct policy_verdict_notify, verdict, 20);
ASSERT_OFFSET(struct policy_verdict_notify, dst_port, 24);
ASSERT_OFFSET(struct policy_verdict_notify, src_port, 26);
ASSERT_OFFSET(struct policy_verdict_notify, proto, 28);
ASSERT_OFFSET(struct policy_verdict_notify, dir, 29);
ASSERT_OFFSET(struct policy_verdict_notify, match_type, 30);
ASSERT_OFFSET(struct policy_verdict_notify, audited, 31);
ASSERT_OFFSET(struct policy_verdict_notify, auth_type, 32);
ASSERT_OFFSET(struct policy_verdict_notify, cookie, 36);
