/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf_host.c - datapath of the node's underlay device (the device other
 * nodes reach it through), loaded once per node.
 *
 *   cil_from_netdev  tc ingress of the underlay device: a plain IPv4 packet
 *                    for a local endpoint (native routing from another
 *                    node) goes straight to the endpoint's handle_policy
 *                    (cilium_call_policy), which looks the source identity
 *                    up in the ipcache for new connections and traces only
 *                    (an identity of 0 in cb[]), so the node neither routes
 *                    it nor sends it through the pod's veth. Everything
 *                    else (ARP, the node's own traffic, non-IPv4)
 *                    passes to the stack untouched. In tunnel mode, other
 *                    nodes' VXLAN packets for a local pod are
 *                    decapsulated here and go the same way, with the
 *                    identity from the VNI (tunnel_to_endpoint4); the
 *                    rest of the tunnel traffic goes to the stack and the
 *                    tunnel device.
 *
 * NodePort (lib/lb4.h, lib/nat.h): a TCP/UDP packet to a NodePort,
 * externalIPs or load-balancer frontend (the external-scope entry, which for
 * externalTrafficPolicy=Local lists the node's own backends only) gets a
 * backend the way pod traffic does (service conntrack entry, affinity,
 * random or Maglev) and is translated to it:
 *   - a backend on this node: DNAT, then its handle_policy with the
 *     client's identity, the frontend's reverse-NAT index in cb[] for the
 *     connection's entry; the backend's replies are translated back in its
 *     cil_from_container and routed to the client by the FIB;
 *   - a backend on another node: DNAT and SNAT to the frontend address at a
 *     port allocated in cilium_snat_v4_external, then the tunnel (identity
 *     remote-node, as the node's own traffic) or a FIB redirect; the reply
 *     comes back to this device, is translated back by the NAT table's
 *     reverse entry and sent to the client by the FIB.
 * A frontend without backends answers with an ICMP port unreachable out of
 * the device it came in, after counting the drop. Packets for a local pod
 * skip these lookups: a pod's address is never a frontend; other nodes'
 * tunnel traffic skips the NodePort and source-NAT lookups.
 *
 * It shares the node-wide pinned maps with bpf_lxc.c.
 */
#include <linux/ip.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/trace.h"
#include "lib/drop.h"
#include "lib/ipcache.h"
#include "lib/local_delivery.h"
#include "lib/conntrack.h"
#include "lib/encap.h"
#include "lib/fib.h"
#include "lib/lb4.h"
#include "lib/nat.h"

#define THIS_SOURCE_FILE	SOURCE_FILE_BPF_HOST

/* Trace notifications of a device carry no endpoint id. */
#define HOST_SOURCE_ID	0

/* TRACE_AGGREGATE_* level of trace notifications. */
volatile const __u32 MONITOR_AGGREGATION = TRACE_AGGREGATE_ACTIVE_CT;
/* ROUTING_MODE_NATIVE or ROUTING_MODE_TUNNEL (node-wide). */
volatile const __u32 ROUTING_MODE = ROUTING_MODE_NATIVE;
/* ifindex of the node's tunnel device in tunnel mode. */
volatile const __u32 TUNNEL_IFINDEX = 0;
/* UDP port of the tunnel device in tunnel mode, network byte order. */
volatile const __be16 TUNNEL_PORT = 0;

/* Send a translated packet to the client or node its FIB route names. */
static __always_inline int nodeport_fib_out(struct __sk_buff *ctx,
					    __u32 dst_label)
{
	struct iphdr *ip4;
	__u32 oif = 0;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	ret = fib_redirect4(ctx, ip4, &oif);
	if (ret == FIB_TO_STACK)
		return DROP_FIB_LOOKUP_FAILED;
	if (IS_DROP(ret))
		return ret;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_NETWORK,
			  HOST_SOURCE_ID, HOST_ID, dst_label, 0, oif, NULL);
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return ret;
}

/*
 * A request for a backend on another node, already DNATed: SNAT to the
 * frontend address, then through the tunnel or out by the FIB.
 */
static __always_inline int nodeport_to_remote(struct __sk_buff *ctx,
					      __u32 l4_off,
					      struct ipv4_ct_tuple *tuple,
					      __be32 frontend,
					      __u16 rev_nat_index)
{
	struct remote_endpoint_info *remote;
	struct ipv4_nat_entry nat = {};
	__u32 dst_label = WORLD_ID;
	__be32 tunnel_endpoint = 0;
	int ret;

	ret = nat4_snat_lookup(tuple, frontend, rev_nat_index, &nat);
	if (IS_DROP(ret))
		return ret;
	ret = lb4_rewrite(ctx, l4_off, tuple, nat.to_addr, nat.to_port,
			  tuple->daddr, tuple->dport);
	if (IS_DROP(ret))
		return ret;

	remote = ipcache_lookup4(tuple->daddr);
	if (remote) {
		dst_label = remote->sec_identity;
		tunnel_endpoint = ipcache_tunnel_endpoint4(remote);
	}
	if (ROUTING_MODE == ROUTING_MODE_TUNNEL && tunnel_endpoint &&
	    TUNNEL_IFINDEX) {
		ret = encap_set_tunnel_key4(ctx, tunnel_endpoint,
					    REMOTE_NODE_ID);
		if (IS_DROP(ret))
			return ret;
		send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_OVERLAY,
				  HOST_SOURCE_ID, HOST_ID, dst_label, 0,
				  TUNNEL_IFINDEX, NULL);
		update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
		return bpf_redirect(TUNNEL_IFINDEX, 0);
	}
	return nodeport_fib_out(ctx, dst_label);
}

/*
 * A packet to a NodePort (or externalIPs/load-balancer) frontend @fe:
 * translated to the connection's backend and delivered or forwarded.
 */
static __always_inline int nodeport_lb4(struct __sk_buff *ctx, __u32 l4_off,
					struct ct_packet *pkt,
					const struct lb4_frontend *fe,
					__u32 *src_label, __u32 *dst_id)
{
	struct lb4_backend *backend = NULL;
	__be32 frontend = pkt->tuple.daddr;
	__u16 rev_nat_index = fe->svc->rev_nat_index;
	struct endpoint_info *ep;
	int ret;

	ret = lb4_conn_backend(fe, pkt, &backend);
	if (ret)
		return ret;
	ret = lb4_rewrite(ctx, l4_off, &pkt->tuple, pkt->tuple.saddr,
			  pkt->tuple.sport, backend->address, backend->port);
	if (IS_DROP(ret))
		return ret;

	ep = lookup_ip4_endpoint(backend->address);
	if (ep && !(ep->flags & ENDPOINT_F_HOST)) {
		*dst_id = ep->lxc_id;
		*src_label = ipcache_source_identity4(pkt->tuple.saddr);
		lb4_nodeport_cb_set(ctx, rev_nat_index);
		return tail_call_policy(ctx, ep->lxc_id, *src_label);
	}
	return nodeport_to_remote(ctx, l4_off, &pkt->tuple, frontend,
				  rev_nat_index);
}

/*
 * A backend's reply to a source-NATed NodePort connection: back to
 * frontend -> client, and out to the client.
 */
static __always_inline int nodeport_rev_snat4(struct __sk_buff *ctx,
					      __u32 l4_off,
					      struct ipv4_ct_tuple *tuple,
					      const struct ipv4_nat_entry *nat)
{
	struct lb4_reverse_nat *frontend;
	__u16 rev_nat_index = nat->rev_nat_index;
	int ret;

	frontend = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat_index);
	if (!frontend)
		return DROP_NAT_NO_MAPPING;
	ret = lb4_rewrite(ctx, l4_off, tuple, frontend->address,
			  frontend->port, nat->to_addr, nat->to_port);
	if (IS_DROP(ret))
		return ret;
	return nodeport_fib_out(ctx, WORLD_ID);
}

/*
 * Service traffic from outside: a reply to a source-NATed connection, or a
 * request to an external frontend. Anything else goes to the stack.
 */
static __always_inline int nodeport_from_netdev(struct __sk_buff *ctx,
						__u32 *src_label,
						__u32 *dst_id)
{
	struct ipv4_nat_entry *nat;
	struct ct_packet pkt = {};
	struct lb4_frontend fe;
	struct iphdr *ip4;
	__u32 l4_off;
	int ret;

	if (IS_DROP(ipv4_load(ctx, &ip4)))
		return TC_ACT_OK;
	if (ip4->protocol != IPPROTO_TCP && ip4->protocol != IPPROTO_UDP)
		return TC_ACT_OK;
	l4_off = ipv4_l4_offset(ip4);
	ret = ct_extract4(ctx, ip4, &pkt);
	if (IS_DROP(ret))
		return TC_ACT_OK;

	nat = nat4_rev_lookup(&pkt.tuple);
	if (nat) {
		struct ipv4_nat_entry copy = *nat;

		return nodeport_rev_snat4(ctx, l4_off, &pkt.tuple, &copy);
	}
	if (!lb4_lookup_external(&pkt.tuple, &fe))
		return TC_ACT_OK;
	return nodeport_lb4(ctx, l4_off, &pkt, &fe, src_label, dst_id);
}

/*
 * Whether a packet is other nodes' tunnel traffic (UDP to TUNNEL_PORT in
 * tunnel mode): never a frontend (the NodePort range leaves the tunnel port
 * out), a source-NAT reply or a pod's packet, and in tunnel mode most of
 * what arrives, so it is told apart before any map lookup.
 */
static __always_inline bool is_tunnel_traffic4(struct __sk_buff *ctx,
					       const struct iphdr *ip4)
{
	__be16 dport;

	if (ROUTING_MODE != ROUTING_MODE_TUNNEL || !TUNNEL_PORT ||
	    ip4->protocol != IPPROTO_UDP || ipv4_is_later_fragment(ip4))
		return false;
	if (bpf_skb_load_bytes(ctx, ipv4_l4_offset(ip4) +
			       offsetof(struct udphdr, dest),
			       &dport, sizeof(dport)) < 0)
		return false;
	return dport == TUNNEL_PORT;
}

/*
 * Other nodes' tunnel traffic for a local pod, decapsulated here and handed
 * to the pod's handle_policy with the sender's identity from the VNI,
 * traced as cil_from_overlay traces it: the stack's receive path for the
 * outer packet (routing, the UDP socket, the VXLAN device's metadata dst,
 * allocated per packet and freed through RCU, and a second pass on the
 * tunnel device) is skipped. Only what vxlan_parse4() accepts, sent to a
 * host address of this node, for a local pod, with an identity other than
 * the host's qualifies; everything else (the node's own traffic, GSO
 * packets, anything unusual or forged) goes on unchanged to the tunnel
 * device, where cil_from_overlay judges and reports it.
 */
static __always_inline int tunnel_to_endpoint4(struct __sk_buff *ctx,
					       __u32 *src_label, __u32 *dst_id)
{
	struct endpoint_info *node, *ep;
	struct vxlan_packet vx;

	if (!vxlan_parse4(ctx, &vx) || vx.identity == HOST_ID)
		return TC_ACT_OK;
	node = lookup_ip4_endpoint(vx.outer_daddr);
	if (!node || !(node->flags & ENDPOINT_F_HOST))
		return TC_ACT_OK;
	ep = lookup_ip4_endpoint(vx.inner_daddr);
	if (!ep || (ep->flags & ENDPOINT_F_HOST))
		return TC_ACT_OK;
	if (!vxlan_decap4(ctx))
		return TC_ACT_OK;

	*src_label = vx.identity;
	*dst_id = ep->lxc_id;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_FROM_OVERLAY,
			  HOST_SOURCE_ID, *src_label, 0, 0, TUNNEL_IFINDEX,
			  NULL);
	return tail_call_policy(ctx, ep->lxc_id, *src_label);
}

static __always_inline int handle_ipv4_from_netdev(struct __sk_buff *ctx,
						   __u32 *src_label,
						   __u32 *dst_id)
{
	struct endpoint_info *ep;
	struct iphdr *ip4;

	/* Malformed packets are the stack's to judge, as before. */
	if (IS_DROP(ipv4_load(ctx, &ip4)))
		return TC_ACT_OK;
	if (is_tunnel_traffic4(ctx, ip4))
		return tunnel_to_endpoint4(ctx, src_label, dst_id);

	/* A pod's address is never a frontend nor a source-NAT address:
	 * traffic to local pods skips the service lookups. */
	ep = lookup_ip4_endpoint(ip4->daddr);
	if (!ep || (ep->flags & ENDPOINT_F_HOST))
		return nodeport_from_netdev(ctx, src_label, dst_id);

	*dst_id = ep->lxc_id;
	if (trace_wanted(MONITOR_AGGREGATION, TRACE_FROM_NETWORK, NULL)) {
		*src_label = ipcache_source_identity4(ip4->saddr);
		send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_FROM_NETWORK,
				  HOST_SOURCE_ID, *src_label, 0, 0,
				  ctx->ifindex, NULL);
	}
	return tail_call_policy(ctx, ep->lxc_id, *src_label);
}

SEC("classifier/from-netdev")
int cil_from_netdev(struct __sk_buff *ctx)
{
	__u32 src_label = 0;
	__u32 dst_id = 0;
	int ret;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;

	ret = handle_ipv4_from_netdev(ctx, &src_label, &dst_id);
	if (ret == DROP_NO_SERVICE) {
		/* Counted and reported as the drop it is, then answered. */
		send_drop_notify(ctx, HOST_SOURCE_ID, src_label, 0, dst_id,
				 ret, METRIC_INGRESS);
		if (IS_DROP(lb4_no_service_reply(ctx)))
			return TC_ACT_SHOT;
		return bpf_redirect(ctx->ifindex, 0);
	}
	if (IS_DROP(ret))
		return send_drop_notify(ctx, HOST_SOURCE_ID, src_label, 0,
					dst_id, ret, METRIC_INGRESS);
	return ret;
}

char __license[] SEC("license") = "Dual BSD/GPL";
