/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The device-dax core's private declarations (drivers/dax/bus.h), which the
 * kernel does not ship in its headers, for each kernel version p2p_dax
 * supports. The struct must match the target kernel byte for byte:
 * `make check-abi` in this directory compares it with the kernel's BTF.
 *
 * Changes upstream that matter here:
 *   6.5  dax_region_put() became static; alloc_dax_region() no longer hands
 *        the caller a reference to drop.
 *   6.8  struct dev_dax_data gained a trailing `bool memmap_on_memory`.
 */
#ifndef P2P_DAX_COMPAT_H
#define P2P_DAX_COMPAT_H

#include <linux/version.h>
#include <linux/range.h>
#include <linux/types.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "p2p_dax supports Linux 6.1 and later; this kernel is older"
#endif
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
/*
 * Newer kernels may have changed the dax core's private API again. Check
 * drivers/dax/bus.h of the target kernel, extend this header, then raise
 * this limit.
 */
#error "p2p_dax has not been checked against Linux 6.15 or later: see p2p_dax_compat.h"
#endif

struct dax_region;
struct dev_dax;
struct dev_pagemap;
struct device;

#define P2P_DAX_IORESOURCE_DAX_STATIC	(1UL << 0)

struct dax_region *alloc_dax_region(struct device *parent, int region_id,
				    struct range *range, int target_node,
				    unsigned int align, unsigned long flags);

struct dev_dax_data {
	struct dax_region *dax_region;
	struct dev_pagemap *pgmap;
	resource_size_t size;
	int id;
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	bool memmap_on_memory;
#endif
};

struct dev_dax *devm_create_dev_dax(struct dev_dax_data *data);

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 5, 0)
void dax_region_put(struct dax_region *dax_region);
/* The caller drops the reference alloc_dax_region() gave it. */
static inline void p2p_dax_region_put(struct dax_region *r) { dax_region_put(r); }
#else
/* The region's lifetime is tied to its parent device alone. */
static inline void p2p_dax_region_put(struct dax_region *r) { }
#endif

#endif /* P2P_DAX_COMPAT_H */
