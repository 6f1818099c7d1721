/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf_sock.c - socket load balancing: services translated when a socket
 * connects or sends, in cgroup v2 hooks, loaded once per node and attached
 * to the cgroup given by the agent's --cgroup-root.
 *
 *   cil_sock4_connect      cgroup/connect4 (TCP, connected UDP)
 *   cil_sock4_sendmsg      cgroup/sendmsg4 (unconnected UDP, sendto)
 *   cil_sock4_recvmsg      cgroup/recvmsg4 (UDP recvfrom)
 *   cil_sock4_getpeername  cgroup/getpeername4
 *
 * Forward (connect, sendmsg): a destination that is a service frontend an
 * in-cluster client may use (a ClusterIP; a NodePort at a node's address;
 * a load-balancer IP; an externalIP or hostPort only at a node's address)
 * gets a backend chosen as the per-packet path chooses one (lb4_select.h):
 * session affinity keyed by the network namespace cookie, else Maglev on a
 * hash of the socket cookie (there is no source port yet), else a random
 * slot. The socket's destination becomes the backend, so its packets need
 * no NAT and bpf_lxc's lb4_local never sees a service address; it remains
 * the path of processes outside the cgroup. The translation is recorded
 * in cilium_lb4_reverse_sk (socket cookie, backend -> frontend).
 *
 * Reverse (recvmsg, getpeername): an address found there for the socket
 * is shown to the application as the frontend it asked for, while the
 * frontend's reverse-NAT index still names that frontend.
 *
 * A frontend without backends fails connect() and sendto() at once: the
 * hook rejects the call and the application gets EPERM, as with Cilium.
 *
 * Every translation, forward or reverse, is reported in cilium_events as
 * one trace-sock record (lib/trace_sock.h) naming both addresses.
 */
#include <linux/in.h>

#include "lib/common.h"
#include "lib/ipcache.h"
#include "lib/lb.h"
#include "lib/lb4_select.h"
#include "lib/trace_sock.h"

/* Return values of cgroup socket-address hooks. */
#define SYS_REJECT	0
#define SYS_PROCEED	1

/* Loopback network, 127.0.0.0/8. */
#define IPV4_LOOPBACK_NET	bpf_htonl(0x7f000000)
#define IPV4_LOOPBACK_MASK	bpf_htonl(0xff000000)

/* Why a forward translation did not happen. */
enum sock4_fwd {
	SOCK4_FWD_DONE,		/* translated */
	SOCK4_FWD_SKIP,		/* not a frontend this hook handles */
	SOCK4_FWD_NO_BACKEND,	/* a frontend without backends */
	SOCK4_FWD_NO_MEMORY,	/* the reverse entry could not be stored */
};

/* @addr is a node's address (this node's or another's), or loopback. */
static __always_inline bool sock4_node_addr(__be32 addr)
{
	struct remote_endpoint_info *info;

	if ((addr & IPV4_LOOPBACK_MASK) == IPV4_LOOPBACK_NET)
		return true;
	info = ipcache_lookup4(addr);
	return info && (info->sec_identity == HOST_ID ||
			info->sec_identity == REMOTE_NODE_ID);
}

/**
 * sock4_lookup - the frontend an in-cluster socket's destination names
 * @daddr, @dport, @proto: the destination the application gave
 * @fe: receives the frontend
 *
 * An exact match, unless it is an externalIP or hostPort frontend at an
 * address that is no node's (those stay with the per-packet path); else,
 * at a node's address, the 0.0.0.0 NodePort surrogate at that port.
 */
static __always_inline bool sock4_lookup(__be32 daddr, __be16 dport, __u8 proto,
					 struct lb4_frontend *fe)
{
	if (lb4_lookup_cluster(daddr, dport, proto, fe)) {
		if (fe->svc->flags & (SVC_FLAG_EXTERNAL_IP | SVC_FLAG_HOSTPORT))
			return sock4_node_addr(daddr);
		return true;
	}
	if (!sock4_node_addr(daddr))
		return false;
	return lb4_lookup_cluster(0, dport, proto, fe) &&
	       (fe->svc->flags & (SVC_FLAG_NODEPORT | SVC_FLAG_HOSTPORT));
}

/* A 32-bit mix of a socket cookie, Maglev's hash under socket LB. */
static __always_inline __u32 sock4_cookie_hash(__u64 cookie)
{
	cookie ^= cookie >> 33;
	cookie *= 0xff51afd7ed558ccdULL;
	cookie ^= cookie >> 33;
	cookie *= 0xc4ceb9fe1a85ec53ULL;
	cookie ^= cookie >> 33;
	return (__u32)cookie;
}

/**
 * sock4_xlate_fwd - point a socket at a backend of the service it names
 * @ctx: the connect or sendmsg context (user_ip4/user_port rewritten)
 */
static __always_inline enum sock4_fwd sock4_xlate_fwd(struct bpf_sock_addr *ctx)
{
	__be32 daddr = ctx->user_ip4;
	__be16 dport = (__be16)ctx->user_port;
	struct lb4_sock_rev_entry rev = {};
	struct lb4_sock_rev_key key = {};
	struct trace_sock_xlate xlate;
	struct lb4_backend *backend;
	struct lb4_frontend fe;
	struct lb4_client client;
	__u32 backend_id;
	__u64 cookie;

	if (!sock4_lookup(daddr, dport, (__u8)ctx->protocol, &fe))
		return SOCK4_FWD_SKIP;
	if (!fe.svc->count)
		return SOCK4_FWD_NO_BACKEND;

	cookie = bpf_get_socket_cookie(ctx);
	client.id = bpf_get_netns_cookie(ctx);
	client.netns_cookie = true;
	client.hash = sock4_cookie_hash(cookie);
	backend_id = lb4_pick_backend(&fe, &client);
	if (!backend_id)
		return SOCK4_FWD_NO_BACKEND;
	backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
	if (!backend)
		return SOCK4_FWD_NO_BACKEND;

	key.cookie = cookie;
	key.address = backend->address;
	key.port = backend->port;
	rev.address = daddr;
	rev.port = dport;
	rev.rev_nat_index = fe.svc->rev_nat_index;
	if (bpf_map_update_elem(&cilium_lb4_reverse_sk, &key, &rev, BPF_ANY) < 0)
		return SOCK4_FWD_NO_MEMORY;

	ctx->user_ip4 = backend->address;
	ctx->user_port = (__u32)backend->port;

	xlate.xlate_point = XLATE_POST_DIRECTION_FWD;
	xlate.cookie = cookie;
	xlate.ip4 = backend->address;
	xlate.port = backend->port;
	xlate.orig_ip4 = daddr;
	xlate.orig_port = dport;
	xlate.rev_nat = fe.svc->rev_nat_index;
	send_trace_sock_notify4(ctx, &xlate);
	return SOCK4_FWD_DONE;
}

/* The hook's verdict after a forward translation. */
static __always_inline int sock4_fwd_verdict(enum sock4_fwd result)
{
	if (result == SOCK4_FWD_NO_BACKEND || result == SOCK4_FWD_NO_MEMORY)
		return SYS_REJECT;
	return SYS_PROCEED;
}

/**
 * sock4_xlate_rev - show a backend address as the frontend it stands for
 * @ctx: the recvmsg or getpeername context (user_ip4/user_port: the peer)
 */
static __always_inline void sock4_xlate_rev(struct bpf_sock_addr *ctx)
{
	struct lb4_sock_rev_key key = {};
	struct lb4_reverse_nat *frontend;
	struct lb4_sock_rev_entry *rev;
	struct trace_sock_xlate xlate;

	key.cookie = bpf_get_socket_cookie(ctx);
	key.address = ctx->user_ip4;
	key.port = (__be16)ctx->user_port;
	rev = bpf_map_lookup_elem(&cilium_lb4_reverse_sk, &key);
	if (!rev)
		return;
	/* The service is gone (or its index now names another frontend):
	 * the backend is what the socket talks to. */
	frontend = bpf_map_lookup_elem(&cilium_lb4_reverse_nat,
				       &rev->rev_nat_index);
	if (!frontend || frontend->address != rev->address ||
	    frontend->port != rev->port) {
		bpf_map_delete_elem(&cilium_lb4_reverse_sk, &key);
		return;
	}
	ctx->user_ip4 = rev->address;
	ctx->user_port = (__u32)rev->port;

	xlate.xlate_point = XLATE_POST_DIRECTION_REV;
	xlate.cookie = key.cookie;
	xlate.ip4 = rev->address;
	xlate.port = rev->port;
	xlate.orig_ip4 = key.address;
	xlate.orig_port = key.port;
	xlate.rev_nat = rev->rev_nat_index;
	send_trace_sock_notify4(ctx, &xlate);
}

SEC("cgroup/connect4")
int cil_sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_fwd_verdict(sock4_xlate_fwd(ctx));
}

SEC("cgroup/sendmsg4")
int cil_sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_fwd_verdict(sock4_xlate_fwd(ctx));
}

SEC("cgroup/recvmsg4")
int cil_sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int cil_sock4_getpeername(struct bpf_sock_addr *ctx)
{
	sock4_xlate_rev(ctx);
	return SYS_PROCEED;
}

char __license[] SEC("license") = "Dual BSD/GPL";
