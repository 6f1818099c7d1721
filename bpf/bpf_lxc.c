/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf_lxc.c - datapath of one endpoint (pod), attached to the host side of
 * its veth pair.
 *
 *   cil_from_container  tc ingress of the host veth: packets leaving the pod,
 *                       delivered locally, encapsulated towards the node
 *                       that hosts the destination (tunnel mode) or handed
 *                       to the stack; in native routing, pods on other
 *                       nodes are reached by a FIB lookup and a redirect
 *                       out of the egress device, past the stack
 *   cil_to_container    tc egress of the host veth: packets from the node's
 *                       stack to the pod (the node itself, and remote pods
 *                       whose traffic the underlay device's bpf_host did
 *                       not deliver); their identity comes from the
 *                       ipcache, looked up only when a new conntrack
 *                       entry, a trace or a drop needs it
 *   handle_policy       tail-call target in cilium_call_policy[LXC_ID]: local
 *                       delivery into this endpoint from anywhere
 *
 * Services (lib/lb4.h): a packet from the pod to a service frontend is
 * translated to a backend first, in cil_from_container, before conntrack
 * and policy, so both see the backend; the translation (lb4_local) and
 * what follows it (ipv4_from_lxc_translated) are global functions, which
 * the kernel verifies one at a time rather than every path of one through
 * every path of the other; replies are translated back where
 * they enter the client (handle_policy, cil_to_container), hairpinned
 * replies (the pod was its own backend) in cil_from_container.
 *
 * Policy (lib/policy.h) is checked on the first packet of a connection
 * only, after conntrack: egress in cil_from_container against the
 * destination's identity, ingress in handle_policy and cil_to_container
 * against the source's. Replies and established connections pass.
 *
 * Every per-endpoint value is a load-time global (set by the agent when it
 * loads the object), so one compiled object serves every endpoint. The
 * node-wide ROUTING_MODE and TUNNEL_IFINDEX are globals too, the same for
 * every endpoint of a node.
 */
#include <linux/ip.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/arp.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/trace.h"
#include "lib/drop.h"
#include "lib/conntrack.h"
#include "lib/ipcache.h"
#include "lib/encap.h"
#include "lib/fib.h"
#include "lib/local_delivery.h"
#include "lib/policy.h"
#include "lib/lb4.h"
#include "lib/nat.h"
#include "lib/layout.h"

#define THIS_SOURCE_FILE	SOURCE_FILE_BPF_LXC

/* Endpoint id (1..4095), the cilium_call_policy index. */
volatile const __u32 LXC_ID = 0;
/* Security identity of the endpoint. */
volatile const __u32 SECLABEL = 0;
/* The endpoint's IPv4 address, network byte order. */
volatile const __be32 LXC_IPV4 = 0;
/* MAC of the pod-side interface. */
volatile const __u8 LXC_MAC[ETH_ALEN] = {};
/* MAC of the host-side veth: the pod's next hop for everything. */
volatile const __u8 NODE_MAC[ETH_ALEN] = {};
/* ifindex of the host-side veth. */
volatile const __u32 LXC_IFINDEX = 0;
/* TRACE_AGGREGATE_* level of trace notifications. */
volatile const __u32 MONITOR_AGGREGATION = TRACE_AGGREGATE_ACTIVE_CT;
/* ROUTING_MODE_NATIVE or ROUTING_MODE_TUNNEL (node-wide). */
volatile const __u32 ROUTING_MODE = ROUTING_MODE_NATIVE;
/* ifindex of the node's tunnel device in tunnel mode (node-wide). */
volatile const __u32 TUNNEL_IFINDEX = 0;
/*
 * The node's underlay (node-wide): the device facing the other nodes (the
 * direct-routing device), the node's address on it and its subnet's
 * netmask (network order); all 0 when the agent named none.
 */
volatile const __u32 DIRECT_ROUTING_DEV_IFINDEX = 0;
volatile const __be32 NODE_IPV4 = 0;
volatile const __be32 NODE_IPV4_MASK = 0;
/* The VXLAN port in tunnel mode, network order (node-wide). */
volatile const __be16 TUNNEL_PORT = 0;

static __always_inline __u16 lxc_id(void)
{
	return (__u16)LXC_ID;
}

/*
 * Answer ARP requests from the pod for any address except its own with
 * NODE_MAC, back out of the veth the request came in on. Anything else
 * (replies, gratuitous ARP for the pod's own IP) goes to the stack.
 */
static __always_inline int handle_arp_from_lxc(struct __sk_buff *ctx)
{
	struct ethhdr *eth;
	struct arp_eth4 *arp;

	if (!arp_load_request(ctx, &eth, &arp))
		return TC_ACT_OK;
	if (arp->tip == LXC_IPV4)
		return TC_ACT_OK;

	arp_make_reply(eth, arp, NODE_MAC);
	return bpf_redirect(ctx->ifindex, 0);
}

/*
 * Hand a packet to the local destination endpoint through its policy
 * program. Only returns when the tail call fails.
 */
static __always_inline int local_delivery4(struct __sk_buff *ctx,
					   const struct endpoint_info *ep)
{
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return tail_call_policy(ctx, ep->lxc_id, SECLABEL);
}

/*
 * Whether @node (an underlay address, network order) is on this node's own
 * underlay subnet: reached by sending to it on the direct-routing device,
 * without a router. False when the agent named no underlay.
 */
static __always_inline bool node_on_link4(__be32 node)
{
	return DIRECT_ROUTING_DEV_IFINDEX && NODE_IPV4 &&
	       !((node ^ NODE_IPV4) & NODE_IPV4_MASK);
}

/*
 * Send a packet to the node hosting its destination, this endpoint's
 * identity in the VNI. A node on the underlay subnet gets it encapsulated
 * here and sent straight out of the direct-routing device (the kernel
 * resolves the node's MAC), past the tunnel device and the outer route
 * lookup; any other node, or a packet too long to wrap, goes through the
 * tunnel device, which encapsulates and routes it. Either way the wire
 * carries the same VXLAN packet.
 */
static __always_inline int encap_to_node4(struct __sk_buff *ctx,
					  __be32 tunnel_endpoint,
					  __u32 dst_label,
					  const struct trace_ctx *tctx)
{
	struct bpf_redir_neigh nh = {
		.nh_family = AF_INET,
		.ipv4_nh = tunnel_endpoint,
	};
	__u32 len = ctx->len;
	int ret;

	if (!encap_identity_fits(SECLABEL))
		return DROP_INVALID_IDENTITY;
	/* Traced as the pod sent it, before it is wrapped. */
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_OVERLAY, lxc_id(),
			  SECLABEL, dst_label, 0, TUNNEL_IFINDEX, tctx);
	if (node_on_link4(tunnel_endpoint)) {
		ret = vxlan_encap4(ctx, NODE_IPV4, tunnel_endpoint, SECLABEL,
				   TUNNEL_PORT);
		if (IS_DROP(ret))
			return ret;
		if (ret == 0) {
			update_metrics(len, METRIC_EGRESS, REASON_FORWARDED);
			return bpf_redirect_neigh(DIRECT_ROUTING_DEV_IFINDEX,
						  &nh, sizeof(nh), 0);
		}
	}
	ret = encap_set_tunnel_key4(ctx, tunnel_endpoint, SECLABEL);
	if (IS_DROP(ret))
		return ret;
	update_metrics(len, METRIC_EGRESS, REASON_FORWARDED);
	return bpf_redirect(TUNNEL_IFINDEX, 0);
}

/*
 * Native routing to a pod on another node (@node_ip, from the ipcache),
 * straight out of the egress device, past the stack. With the direct-routing
 * device known, the packet goes to @node_ip on it without a route lookup:
 * the agent routes every other node's pod CIDR via that node's address on
 * that device, so the lookup could only answer the same. Without it, the
 * node's FIB decides. Returns FIB_TO_STACK when the stack must handle the
 * packet instead.
 */
static __always_inline int route_to_node4(struct __sk_buff *ctx,
					  __be32 node_ip, __u32 dst_label,
					  const struct trace_ctx *tctx)
{
	struct iphdr *ip4;
	__u32 oif = 0;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	if (DIRECT_ROUTING_DEV_IFINDEX) {
		oif = DIRECT_ROUTING_DEV_IFINDEX;
		ret = neigh_redirect4(ip4, oif, node_ip);
	} else {
		ret = fib_redirect4(ctx, ip4, &oif);
	}
	if (ret == FIB_TO_STACK || IS_DROP(ret))
		return ret;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_NETWORK, lxc_id(),
			  SECLABEL, dst_label, 0, oif, tctx);
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return ret;
}

/*
 * Identity of a remote address: host for the node's own addresses, the
 * ipcache's identity for any address the cluster knows (local and remote
 * pods), world otherwise.
 */
static __always_inline __u32 remote_identity4(__be32 addr)
{
	struct endpoint_info *ep = lookup_ip4_endpoint(addr);

	if (ep && (ep->flags & ENDPOINT_F_HOST))
		return HOST_ID;
	return ipcache_source_identity4(addr);
}

/*
 * A hairpinned connection's reply (pod -> IPV4_LOOPBACK): translated back
 * to frontend -> pod and put straight back into the pod.
 */
static __always_inline int hairpin_reply4(struct __sk_buff *ctx, __u32 l4_off,
					  struct ct_packet *pkt)
{
	struct ethhdr *eth;
	struct iphdr *ip4;
	int ret;

	ret = lb4_rev_nat(ctx, l4_off, &pkt->tuple, pkt->rev_nat_index,
			  LXC_IPV4);
	if (IS_DROP(ret))
		return ret;
	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	/* ipv4_load() checked that the Ethernet header precedes ip4. */
	eth = (void *)ip4 - ETH_HLEN;
	eth_rewrite(eth, LXC_MAC, NODE_MAC);
	update_metrics(ctx->len, METRIC_INGRESS, REASON_FORWARDED);
	return bpf_redirect_peer(LXC_IFINDEX, 0);
}

/*
 * A reply of a NodePort connection this pod serves (its conntrack entry,
 * created when bpf_host delivered the request, names the frontend): the
 * source becomes the frontend again and the packet goes straight out of the
 * device the node's FIB names for the client, past the stack (which would
 * take a packet from its own address for a martian).
 */
static __always_inline int nodeport_reply4(struct __sk_buff *ctx, __u32 l4_off,
					   struct ct_packet *pkt,
					   const struct trace_ctx *tctx)
{
	struct iphdr *ip4;
	__u32 oif = 0;
	int ret;

	ret = lb4_rev_nat(ctx, l4_off, &pkt->tuple, pkt->rev_nat_index,
			  pkt->tuple.daddr);
	if (IS_DROP(ret))
		return ret;
	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	ret = fib_redirect4(ctx, ip4, &oif);
	if (ret == FIB_TO_STACK)
		return DROP_FIB_LOOKUP_FAILED;
	if (IS_DROP(ret))
		return ret;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_NETWORK, lxc_id(),
			  SECLABEL, WORLD_ID, 0, oif, tctx);
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return ret;
}

/**
 * struct from_lxc_dst - what a drop report of cil_from_container names as
 * the destination, filled as handle_ipv4_from_lxc learns it
 * @lxc_id: the local endpoint the packet was for (0: none, or not known)
 * @sec_label: the destination's identity, when policy looked it up
 */
struct from_lxc_dst {
	__u32	lxc_id;
	__u32	sec_label;
};

/*
 * Whether conntrack saw the first packet of a connection: no entry, or a
 * fresh SYN on a closing entry's tuple (ct_lookup4 says CT_NEW for both).
 */
static __always_inline bool ct_is_new(int ct_ret)
{
	return ct_ret == CT_NEW;
}

/*
 * The rest of handle_ipv4_from_lxc once the service translation is done:
 * conntrack, egress policy, delivery. A global function, so the verifier
 * checks it once rather than once per path through the translation.
 */
__noinline int ipv4_from_lxc_translated(struct __sk_buff *ctx, __u32 l4_off,
					struct ct_packet *pkt,
					struct from_lxc_dst *dst)
{
	struct remote_endpoint_info *remote;
	struct ct_entry *reopened;
	struct trace_ctx tctx = {};
	struct endpoint_info *ep;
	__u32 dst_label = 0;
	__be32 daddr;
	int ret;

	if (!pkt || !dst)
		return DROP_INVALID;
	daddr = pkt->tuple.daddr;
	ret = ct_lookup4(pkt, CT_EGRESS, &tctx, &reopened);
	if (ret == CT_REPLY && pkt->loopback)
		return hairpin_reply4(ctx, l4_off, pkt);
	/* Only NodePort connections' ingress entries carry one in a reply. */
	if (ret == CT_REPLY && pkt->rev_nat_index)
		return nodeport_reply4(ctx, l4_off, pkt, &tctx);
	/* Traces of a translated request name its frontend (trace.h). */
	tctx.rev_nat = pkt->rev_nat_index;
	/* The destination's identity costs two lookups; only policy needs it here. */
	/* A pod reaching itself through a service is not policed (hairpin). */
	if (ct_is_new(ret) && !pkt->loopback &&
	    policy_enforced(lxc_id(), POLICY_F_EGRESS)) {
		dst->sec_label = remote_identity4(daddr);
		ret = policy_check_new4(ctx, lxc_id(), dst->sec_label, true, pkt);
		if (IS_DROP(ret))
			return ret;
	}
	if (ret == CT_NEW) {
		ret = ct_create_new4(pkt, SECLABEL, &tctx, reopened);
		if (IS_DROP(ret))
			return ret;
	}

	ep = lookup_ip4_endpoint(daddr);
	if (ep && !(ep->flags & ENDPOINT_F_HOST)) {
		dst->lxc_id = ep->lxc_id;
		trace_rev_nat_cb_set(ctx, tctx.rev_nat);
		return local_delivery4(ctx, ep);
	}

	remote = ipcache_lookup4(daddr);
	if (remote) {
		__be32 node_ip;

		dst_label = remote->sec_identity;
		if (ROUTING_MODE == ROUTING_MODE_TUNNEL) {
			node_ip = ipcache_tunnel_endpoint4(remote);
			if (node_ip)
				return encap_to_node4(ctx, node_ip, dst_label,
						      &tctx);
		} else {
			node_ip = ipcache_node_ip4(remote);
			if (node_ip) {
				ret = route_to_node4(ctx, node_ip, dst_label,
						     &tctx);
				if (ret != FIB_TO_STACK)
					return ret;
			}
		}
	}

	/* Native routing, or a destination outside the cluster's pods. */
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_STACK, lxc_id(),
			  SECLABEL, dst_label, 0, 0, &tctx);
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return TC_ACT_OK;
}

static __always_inline int handle_ipv4_from_lxc(struct __sk_buff *ctx,
						struct from_lxc_dst *dst)
{
	struct ct_packet pkt = {};
	struct iphdr *ip4;
	__u32 l4_off;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	if (ip4->saddr != LXC_IPV4)
		return DROP_INVALID_SIP;
	l4_off = ipv4_l4_offset(ip4);

	ret = ct_extract4(ctx, ip4, &pkt);
	if (IS_DROP(ret))
		return ret;
	ret = lb4_local(ctx, l4_off, &pkt, LXC_IPV4);
	if (IS_DROP(ret))
		return ret;
	return ipv4_from_lxc_translated(ctx, l4_off, &pkt, dst);
}

SEC("classifier/from-container")
int cil_from_container(struct __sk_buff *ctx)
{
	struct from_lxc_dst dst = {};
	int ret;

	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_FROM_LXC, lxc_id(),
			  SECLABEL, 0, 0, ctx->ifindex, NULL);

	switch (bpf_ntohs(ctx->protocol)) {
	case ETH_P_ARP:
		return handle_arp_from_lxc(ctx);
	case ETH_P_IP:
		ret = handle_ipv4_from_lxc(ctx, &dst);
		break;
	default:
		ret = DROP_UNKNOWN_L3;
		break;
	}

	if (ret == DROP_NO_SERVICE) {
		/* Counted and reported as the drop it is, then answered. */
		send_drop_notify(ctx, lxc_id(), SECLABEL, dst.sec_label,
				 dst.lxc_id, ret, METRIC_EGRESS);
		if (IS_DROP(lb4_no_service_reply(ctx)))
			return TC_ACT_SHOT;
		return bpf_redirect_peer(LXC_IFINDEX, 0);
	}
	if (IS_DROP(ret))
		return send_drop_notify(ctx, lxc_id(), SECLABEL, dst.sec_label,
					dst.lxc_id, ret, METRIC_EGRESS);
	return ret;
}

/*
 * Deliver a packet into this endpoint: ingress conntrack, L2 rewrite, TTL
 * decrement, then straight into the pod's namespace. A source identity of 0
 * (the underlay device's native-routing delivery) is resolved from the
 * ipcache only when something uses it: a new connection's policy check and
 * conntrack entry, a trace.
 */
static __always_inline int ipv4_to_endpoint(struct __sk_buff *ctx,
					    __u32 *src_label)
{
	__u16 nodeport_rev_nat = lb4_nodeport_cb_take(ctx);
	struct trace_ctx tctx = { .rev_nat = trace_rev_nat_cb_take(ctx) };
	struct ct_entry *reopened;
	struct ct_packet pkt = {};
	struct ethhdr *eth;
	struct iphdr *ip4;
	__be32 saddr;
	__u32 l4_off;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	saddr = ip4->saddr;
	l4_off = ipv4_l4_offset(ip4);
	ret = ct_extract4(ctx, ip4, &pkt);
	if (IS_DROP(ret))
		return ret;
	ret = ct_lookup4(&pkt, CT_INGRESS, &tctx, &reopened);
	if (ct_is_new(ret) && saddr == IPV4_LOOPBACK) {
		/* The pod reaching itself through a service: no policy, as
		 * in Cilium; the entry remembers the frontend for the reply. */
		pkt.loopback = true;
		pkt.rev_nat_index = lb4_loopback_rev_nat(&pkt.tuple);
	} else if (ct_is_new(ret)) {
		if (!*src_label)
			*src_label = ipcache_source_identity4(saddr);
		ret = policy_check_new4(ctx, lxc_id(), *src_label, false, &pkt);
		if (IS_DROP(ret))
			return ret;
	}
	if (ret == CT_NEW) {
		/* A NodePort request bpf_host translated: remember the
		 * frontend for the replies. */
		if (nodeport_rev_nat)
			pkt.rev_nat_index = nodeport_rev_nat;
		ret = ct_create_new4(&pkt, *src_label, &tctx, reopened);
		if (IS_DROP(ret))
			return ret;
	}
	if (ret == CT_REPLY && pkt.rev_nat_index && !pkt.loopback) {
		ret = lb4_rev_nat(ctx, l4_off, &pkt.tuple, pkt.rev_nat_index,
				  pkt.tuple.daddr);
		if (IS_DROP(ret))
			return ret;
	}

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	/* ipv4_load() checked that the Ethernet header precedes ip4. */
	eth = (void *)ip4 - ETH_HLEN;
	eth_rewrite(eth, LXC_MAC, NODE_MAC);
	ret = ipv4_dec_ttl(ip4);
	if (IS_DROP(ret))
		return ret;

	if (trace_wanted(MONITOR_AGGREGATION, TRACE_TO_LXC, &tctx)) {
		if (!*src_label)
			*src_label = ipcache_source_identity4(saddr);
		send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_LXC,
				  lxc_id(), *src_label, SECLABEL, lxc_id(),
				  LXC_IFINDEX, &tctx);
	}
	update_metrics(ctx->len, METRIC_INGRESS, REASON_FORWARDED);
	return bpf_redirect_peer(LXC_IFINDEX, 0);
}

/* Source address of an IPv4 packet, 0 when it has none (for drop reports). */
static __always_inline __be32 packet_saddr4(struct __sk_buff *ctx)
{
	struct iphdr *ip4;

	if (ctx->protocol != bpf_htons(ETH_P_IP) || IS_DROP(ipv4_load(ctx, &ip4)))
		return 0;
	return ip4->saddr;
}

SEC("classifier/policy")
int handle_policy(struct __sk_buff *ctx)
{
	__u32 src_label = ctx->cb[CB_SRC_LABEL];
	__be32 saddr;
	int ret;

	ctx->cb[CB_SRC_LABEL] = 0;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		ret = DROP_UNKNOWN_L3;
	else
		ret = ipv4_to_endpoint(ctx, &src_label);

	if (IS_DROP(ret)) {
		saddr = src_label ? 0 : packet_saddr4(ctx);
		if (saddr)
			src_label = ipcache_source_identity4(saddr);
		return send_drop_notify(ctx, lxc_id(), src_label, SECLABEL,
					LXC_ID, ret, METRIC_INGRESS);
	}
	return ret;
}

/*
 * The source identity is only looked up when something uses it: a new
 * conntrack entry stores it, a trace notification or a drop reports it.
 * Established traffic that is not reported skips both map lookups.
 */
static __always_inline int handle_ipv4_to_lxc(struct __sk_buff *ctx,
					      __be32 *saddr, __u32 *src_label)
{
	struct ct_entry *reopened;
	struct trace_ctx tctx = {};
	struct ct_packet pkt = {};
	struct iphdr *ip4;
	__u32 l4_off;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	*saddr = ip4->saddr;
	l4_off = ipv4_l4_offset(ip4);

	ret = ct_extract4(ctx, ip4, &pkt);
	if (IS_DROP(ret))
		return ret;
	ret = ct_lookup4(&pkt, CT_INGRESS, &tctx, &reopened);
	if (ret == CT_REPLY && pkt.rev_nat_index && !pkt.loopback) {
		ret = lb4_rev_nat(ctx, l4_off, &pkt.tuple, pkt.rev_nat_index,
				  pkt.tuple.daddr);
		if (IS_DROP(ret))
			return ret;
		ret = CT_REPLY;
	}
	if (ct_is_new(ret)) {
		*src_label = remote_identity4(*saddr);
		ret = policy_check_new4(ctx, lxc_id(), *src_label, false, &pkt);
		if (IS_DROP(ret))
			return ret;
	}
	if (ret == CT_NEW) {
		ret = ct_create_new4(&pkt, *src_label, &tctx, reopened);
		if (IS_DROP(ret))
			return ret;
	}

	if (trace_wanted(MONITOR_AGGREGATION, TRACE_TO_LXC, &tctx)) {
		if (!*src_label)
			*src_label = remote_identity4(*saddr);
		send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_LXC,
				  lxc_id(), *src_label, SECLABEL, lxc_id(),
				  LXC_IFINDEX, &tctx);
	}
	update_metrics(ctx->len, METRIC_INGRESS, REASON_FORWARDED);
	return TC_ACT_OK;
}

SEC("classifier/to-container")
int cil_to_container(struct __sk_buff *ctx)
{
	__u32 src_label = 0;
	__be32 saddr = 0;
	int ret;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;

	ret = handle_ipv4_to_lxc(ctx, &saddr, &src_label);
	if (IS_DROP(ret)) {
		if (saddr && !src_label)
			src_label = remote_identity4(saddr);
		return send_drop_notify(ctx, lxc_id(), src_label, SECLABEL,
					LXC_ID, ret, METRIC_INGRESS);
	}
	return ret;
}

char __license[] SEC("license") = "Dual BSD/GPL";
