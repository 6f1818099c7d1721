/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.h - per-CPU packet/byte counters keyed by verdict reason and
 * direction (cilium_metrics).
 */
#pragma once

#include "common.h"

/* Traffic directions of a metrics key. */
#define METRIC_INGRESS	1
#define METRIC_EGRESS	2
#define METRIC_SERVICE	3

/* Reason 0 counts forwarded packets; drops use the positive drop code. */
#define REASON_FORWARDED	0

struct metrics_key {
	__u8	reason;
	__u8	dir:2,
		pad:6;
	__u16	reserved[3];
};

struct metrics_value {
	__u64	count;
	__u64	bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct metrics_key);
	__type(value, struct metrics_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_metrics SEC(".maps");

/**
 * update_metrics - count one packet of @bytes bytes
 * @bytes: full packet length
 * @dir: METRIC_INGRESS, METRIC_EGRESS or METRIC_SERVICE
 * @reason: REASON_FORWARDED or a positive drop code
 */
static __always_inline void update_metrics(__u64 bytes, __u8 dir, __u8 reason)
{
	struct metrics_key key = {
		.reason = reason,
		.dir = dir,
	};
	struct metrics_value *value;

	value = bpf_map_lookup_elem(&cilium_metrics, &key);
	if (value) {
		/* Per-CPU value: no other CPU writes this slot. */
		value->count += 1;
		value->bytes += bytes;
	} else {
		struct metrics_value fresh = {
			.count = 1,
			.bytes = bytes,
		};

		bpf_map_update_elem(&cilium_metrics, &key, &fresh, BPF_ANY);
	}
}
