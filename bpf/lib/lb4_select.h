/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb4_select.h - IPv4 frontend lookup and backend selection over the maps
 * of lb.h, shared by the per-packet load balancer (lb4.h, bpf_lxc and
 * bpf_host) and connect-time socket load balancing (bpf_sock.c), so both
 * pick backends the same way:
 *
 *   - lb4_lookup_frontend() finds a frontend's master entry in one lookup
 *     scope, lb4_lookup_cluster() the one in-cluster clients use (the
 *     internal scope when the frontend has two, else the default one);
 *   - lb4_pick_backend() chooses a backend for a new connection: session
 *     affinity first (cilium_lb4_affinity, valid while
 *     cilium_lb_affinity_match lists the backend and the timeout has not
 *     passed), else the service's algorithm: the Maglev table entry at the
 *     caller's hash % LB_MAGLEV_LUT_SIZE, the first slot, or a random slot.
 *
 * The caller says who the client is (struct lb4_client): the per-packet
 * path gives the source address and a hash of the 5-tuple; socket LB gives
 * the network namespace cookie (Cilium's affinity key under socket LB) and
 * a hash of the socket cookie, since there is no source port yet.
 */
#pragma once

#include <linux/in.h>

#include "common.h"
#include "lb.h"

/**
 * struct lb4_frontend - the frontend a connection was addressed to
 * @key: services-map key of the master entry (slot 0) that matched
 * @svc: that master entry
 */
struct lb4_frontend {
	struct lb4_key key;
	struct lb4_service *svc;
};

/**
 * struct lb4_client - the client of a new connection, for backend selection
 * @id: client address (network order, in the low 32 bits) or netns cookie
 * @netns_cookie: @id is a network namespace cookie
 * @hash: a value that is the same for every packet of the connection
 *        (Maglev's table index is taken from it)
 */
struct lb4_client {
	__u64 id;
	bool netns_cookie;
	__u32 hash;
};

/**
 * lb4_lookup_frontend - the master entry of a frontend in one lookup scope
 * @address, @port: the frontend (network order)
 * @proto: IPPROTO_TCP or IPPROTO_UDP (anything else never matches)
 * @scope: LB_LOOKUP_SCOPE_*
 * @fe: receives the key and entry
 *
 * Returns true on a hit.
 */
static __always_inline bool lb4_lookup_frontend(__be32 address, __be16 port,
						__u8 proto, __u8 scope,
						struct lb4_frontend *fe)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return false;
	__builtin_memset(&fe->key, 0, sizeof(fe->key));
	fe->key.address = address;
	fe->key.dport = port;
	fe->key.proto = proto;
	fe->key.scope = scope;
	fe->svc = bpf_map_lookup_elem(&cilium_lb4_services_v2, &fe->key);
	return fe->svc != NULL;
}

/**
 * lb4_lookup_cluster - the master entry an in-cluster client gets
 * @address, @port, @proto: the frontend, as for lb4_lookup_frontend()
 * @fe: receives the key and entry
 *
 * The default (external) scope first, then the internal one when the
 * master says the frontend has two (SVC_FLAG_TWO_SCOPES). Returns true on
 * a hit.
 */
static __always_inline bool lb4_lookup_cluster(__be32 address, __be16 port,
					       __u8 proto, struct lb4_frontend *fe)
{
	struct lb4_service *external;

	if (!lb4_lookup_frontend(address, port, proto, LB_LOOKUP_SCOPE_EXT, fe))
		return false;
	external = fe->svc;
	if (external->flags2 & SVC_FLAG_TWO_SCOPES &&
	    !lb4_lookup_frontend(address, port, proto, LB_LOOKUP_SCOPE_INT, fe)) {
		fe->key.scope = LB_LOOKUP_SCOPE_EXT;
		fe->svc = external;
	}
	return true;
}

/* The backend in slot @slot of the frontend @fe, 0 when there is none. */
static __always_inline __u32 lb4_slot_backend(const struct lb4_frontend *fe,
					      __u16 slot)
{
	struct lb4_key key = fe->key;
	struct lb4_service *entry;

	key.backend_slot = slot;
	entry = bpf_map_lookup_elem(&cilium_lb4_services_v2, &key);
	return entry ? entry->backend_id : 0;
}

/* The Maglev table's backend at @hash, 0 when the table is missing. */
static __always_inline __u32 lb4_maglev_backend(const struct lb4_frontend *fe,
						__u32 hash)
{
	__u16 rev_nat = fe->svc->rev_nat_index;
	__u32 index = hash % LB_MAGLEV_LUT_SIZE;
	__u32 zero = 0;
	__u32 *table;
	void *inner;

	inner = bpf_map_lookup_elem(&cilium_lb4_maglev, &rev_nat);
	if (!inner)
		return 0;
	table = bpf_map_lookup_elem(inner, &zero);
	/* Hide from the compiler that the modulo bounds it, so the check
	 * the verifier needs survives. */
	asm volatile("" : "+r"(index));
	if (!table || index >= LB_MAGLEV_LUT_SIZE)
		return 0;
	return table[index];
}

/* The affinity-map key of @client for @fe. */
static __always_inline void lb4_affinity_key_init(const struct lb4_frontend *fe,
						  const struct lb4_client *client,
						  struct lb4_affinity_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	if (client->netns_cookie) {
		key->client_id.client_cookie = client->id;
		key->netns_cookie = 1;
	} else {
		key->client_id.client_ip = (__u32)client->id;
	}
	key->rev_nat_id = fe->svc->rev_nat_index;
}

/* The session-affinity backend of @client for @fe, 0 when none is valid. */
static __always_inline __u32 lb4_affinity_backend(const struct lb4_frontend *fe,
						  const struct lb4_client *client,
						  __u32 now)
{
	struct lb4_affinity_key key;
	struct lb_affinity_match match = {};
	struct lb_affinity_val *val;
	__u32 timeout = fe->svc->affinity_timeout & AFFINITY_TIMEOUT_MASK;

	lb4_affinity_key_init(fe, client, &key);
	val = bpf_map_lookup_elem(&cilium_lb4_affinity, &key);
	if (!val)
		return 0;
	if (now - val->last_used > timeout) {
		bpf_map_delete_elem(&cilium_lb4_affinity, &key);
		return 0;
	}
	match.backend_id = val->backend_id;
	match.rev_nat_id = fe->svc->rev_nat_index;
	if (!bpf_map_lookup_elem(&cilium_lb_affinity_match, &match))
		return 0;
	val->last_used = now;
	return val->backend_id;
}

/*
 * Record @backend_id as @client's backend for @fe, unless a connection of
 * the same client on another CPU recorded a valid one first: then that one
 * is returned, so concurrent first connections agree.
 */
static __always_inline __u32 lb4_affinity_claim(const struct lb4_frontend *fe,
						const struct lb4_client *client,
						__u32 backend_id, __u32 now)
{
	struct lb4_affinity_key key;
	struct lb_affinity_val val = {};
	__u32 first;

	lb4_affinity_key_init(fe, client, &key);
	val.last_used = now;
	val.backend_id = backend_id;
	if (!bpf_map_update_elem(&cilium_lb4_affinity, &key, &val, BPF_NOEXIST))
		return backend_id;
	first = lb4_affinity_backend(fe, client, now);
	if (first)
		return first;
	/* The entry there names a backend that is gone. */
	bpf_map_update_elem(&cilium_lb4_affinity, &key, &val, BPF_ANY);
	return backend_id;
}

/**
 * lb4_pick_backend - choose a backend for a new connection
 * @fe: the frontend
 * @client: who connects
 *
 * Returns the backend ID, or 0 when the frontend has none.
 */
static __always_inline __u32 lb4_pick_backend(const struct lb4_frontend *fe,
					      const struct lb4_client *client)
{
	__u16 count = fe->svc->count;
	__u32 algorithm = fe->svc->affinity_timeout >> LB_ALGORITHM_SHIFT;
	bool affinity = fe->svc->flags & SVC_FLAG_AFFINITY;
	__u32 now = bpf_now_sec();
	__u32 backend_id = 0;

	if (!count)
		return 0;
	if (affinity) {
		backend_id = lb4_affinity_backend(fe, client, now);
		if (backend_id)
			return backend_id;
	}
	if (algorithm == LB_SELECTION_MAGLEV)
		backend_id = lb4_maglev_backend(fe, client->hash);
	else if (algorithm == LB_SELECTION_FIRST)
		backend_id = lb4_slot_backend(fe, 1);
	if (!backend_id)
		backend_id = lb4_slot_backend(fe, bpf_get_prandom_u32() % count + 1);
	if (backend_id && affinity)
		backend_id = lb4_affinity_claim(fe, client, backend_id, now);
	return backend_id;
}
