/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What differs between the kernels p2p_dax builds for (6.1 and later).
 *
 * Public kernel APIs are chosen by feature, never by version: Kbuild greps
 * the target kernel's headers and defines P2P_DAX_HAVE_* for what it finds.
 *
 * The device-dax core's declarations (drivers/dax/bus.h) are private: the
 * kernel does not ship them in its headers, so they are declared here, in
 * the layout of the kernel version that introduced each change. There is no
 * upper version limit: after every build check-abi.sh compares struct
 * dev_dax_data with the target kernel's BTF and the dax symbols with its
 * Module.symvers, and fails naming the member or symbol that changed.
 *
 * Changes upstream that matter here:
 *   6.5  dax_region_put() became static; alloc_dax_region() no longer hands
 *        the caller a reference to drop.
 *   6.8  struct dev_dax_data gained a trailing `bool memmap_on_memory`.
 *   6.2  FOLL_PCI_P2PDMA (P2P_DAX_HAVE_FOLL_PCI_P2PDMA): GUP pins P2PDMA
 *        pages only when asked, and dma_map_sgtable() maps them by the P2P
 *        rules (bus address through a switch, EREMOTEIO when unreachable).
 *        Before it, dma_map_sg() mapped a P2PDMA page as if it were RAM.
 *   6.11 pcim_iomap_region() (P2P_DAX_HAVE_PCIM_IOMAP_REGION); the
 *        pcim_iomap_regions() and pcim_iomap_table() pair is deprecated.
 *   6.14 page_pgmap() (P2P_DAX_HAVE_PAGE_PGMAP) replaces page->pgmap.
 *
 * Architectures: x86-64 only (Kbuild refuses others). The dax core maps the
 * BAR with memremap_pages(), which asks for PAGE_KERNEL (write-back); only a
 * PAT memtype reserved beforehand (write-combining, see p2p_dax.c) makes
 * that mapping and every user mapping of /dev/daxN.M uncached for reads.
 * Other architectures have no such reservation.
 */
#ifndef P2P_DAX_COMPAT_H
#define P2P_DAX_COMPAT_H

#include <linux/version.h>
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/pci.h>
#include <linux/range.h>
#include <linux/types.h>

#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 1, 0)
#error "p2p_dax supports Linux 6.1 and later; this kernel is older"
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

/* BAR `bar` requested and mapped for the device's binding, or an ERR_PTR. */
static inline void __iomem *p2p_dax_iomap_bar(struct pci_dev *pdev, int bar, const char *name)
{
#ifdef P2P_DAX_HAVE_PCIM_IOMAP_REGION
	return pcim_iomap_region(pdev, bar, name);
#else
	int rc = pcim_iomap_regions(pdev, BIT(bar), name);

	return rc ? ERR_PTR(rc) : pcim_iomap_table(pdev)[bar];
#endif
}

#ifdef P2P_DAX_HAVE_FOLL_PCI_P2PDMA
#define P2P_DAX_FOLL_PCI_P2PDMA	FOLL_PCI_P2PDMA
#else
#define P2P_DAX_FOLL_PCI_P2PDMA	0
#endif

/* The dev_pagemap of a ZONE_DEVICE page. */
static inline struct dev_pagemap *p2p_dax_page_pgmap(struct page *page)
{
#ifdef P2P_DAX_HAVE_PAGE_PGMAP
	return page_pgmap(page);
#else
	return page->pgmap;
#endif
}

#endif /* P2P_DAX_COMPAT_H */
