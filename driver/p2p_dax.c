// SPDX-License-Identifier: GPL-2.0
/*
 * p2p_dax: a PCIe device's memory BAR as a device-dax device (/dev/daxN.M),
 * so that user space maps it and other devices (NVMe, RDMA NICs) DMA straight
 * into it, and, on kernels built with CONFIG_PCI_P2PDMA, as P2PDMA memory.
 *
 * Two kinds of device:
 *  - a p2p-dax board: registers in BAR0 (the map in p2p_dax_regs.h, generated
 *    from hw/spec/regmap.py), memory in BAR2. Bound by its PCI ID.
 *  - memory only: any device with a suitable memory BAR (QEMU's ivshmem, for
 *    tests), bound by hand through new_id or driver_override, and only when
 *    the module parameter memory_bar names the BAR to use.
 *
 * The dax region's parent is an auxiliary device under the PCI device, bound
 * to this module's auxiliary driver: the dax core keeps its state in the
 * parent's driver data and ties the region's lifetime to the parent's
 * binding, so removing the auxiliary device tears the dax device down.
 * The memory BAR is never requested or mapped here: the dax core requests
 * it and maps it with memremap_pages().
 *
 * Every device also gets a character device, /dev/p2p-dax<id>, whose ioctls
 * (p2p_dax_ioctl.h) drive a board's DMA engine between user buffers and
 * BAR2; on a memory-only device they answer EOPNOTSUPP.
 */
#include <linux/auxiliary_bus.h>
#include <linux/debugfs.h>
#include <linux/delay.h>
#include <linux/dma-mapping.h>
#include <linux/idr.h>
#include <linux/interrupt.h>
#include <linux/iommu.h>
#include <linux/kref.h>
#include <linux/memregion.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/numa.h>
#include <linux/pci-p2pdma.h>
#include <linux/pci.h>
#include <linux/sched/mm.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/wait.h>

#include <asm/memtype.h>

#include "p2p_dax_compat.h"
#include "p2p_dax_ioctl.h"
#include "p2p_dax_regs.h"

#define P2P_DAX_REG_BAR		0
#define P2P_DAX_BOARD_MEM_BAR	2
#define P2P_DAX_MIN_ALIGN	SZ_2M	/* device-dax and memremap_pages on x86-64 */

enum p2p_dax_mode { P2P_DAX_MODE_DAX, P2P_DAX_MODE_P2PDMA, P2P_DAX_MODE_BOTH };
static const char * const p2p_dax_mode_names[] = { "dax", "p2pdma", "both" };

static char *mode = "dax";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "what the memory BAR becomes: dax (default), p2pdma, or both "
		 "(dax below, p2pdma in the top p2pdma_size bytes); p2pdma and both "
		 "need a kernel built with CONFIG_PCI_P2PDMA");

static ulong p2pdma_size;
module_param(p2pdma_size, ulong, 0444);
MODULE_PARM_DESC(p2pdma_size, "mode=both: bytes at the top of the memory BAR for "
		 "p2pdma, a multiple of 2 MiB (default 0: half the BAR)");

static uint dax_align = PAGE_SIZE;
module_param_named(align, dax_align, uint, 0444);
MODULE_PARM_DESC(align, "alignment of the dax device's mappings: 4096 (default; "
		 "any mapping length works) or 2097152 (huge pages; mmap lengths "
		 "and offsets must be multiples of 2 MiB)");

static int memory_bar = -1;
module_param(memory_bar, int, 0444);
MODULE_PARM_DESC(memory_bar, "memory-only mode: the BAR (0-5) to use on a device "
		 "that is not a p2p-dax board and was bound by hand (new_id or "
		 "driver_override), e.g. 2 for QEMU's ivshmem; default -1 refuses "
		 "such devices");

static uint max_transfers = 256;
module_param(max_transfers, uint, 0444);
MODULE_PARM_DESC(max_transfers, "transfers one board's DMA node holds at once, all "
		 "open files together (default 256; each file may hold 32)");

static uint dma_deadline_ms = 30000;
module_param(dma_deadline_ms, uint, 0444);
MODULE_PARM_DESC(dma_deadline_ms, "abort the DMA engine when none of its descriptors has "
		 "ended for this long while some are in flight; their transfers end with "
		 "status ABORTED (default 30000, 100 to 3600000)");

static ulong max_pinned = SZ_1G;
module_param(max_pinned, ulong, 0444);
MODULE_PARM_DESC(max_pinned, "bytes of user buffers one board's DMA node keeps "
		 "pinned at once, all open files together (default 1 GiB); each "
		 "caller's RLIMIT_MEMLOCK applies too");

static enum p2p_dax_mode p2p_dax_mode;
static DEFINE_IDA(p2p_dax_ida);

struct p2p_dax {
	struct pci_dev *pdev;
	void __iomem *regs;		/* BAR0; NULL in memory-only mode */
	int bar;			/* the memory BAR */
	int id;				/* /dev/p2p-dax<id>, auxiliary device id */
	int region_id;			/* dax region id: /dev/dax<region_id>.0 */
	u32 version;			/* gateware VERSION register */
	u64 mem_size;			/* boards: memory behind BAR2 (MEM_SIZE) */
	resource_size_t dax_size;	/* dax part: from the BAR's start */
	resource_size_t p2p_size;	/* p2pdma part: at the BAR's end */
	char dax_name[32];		/* e.g. "dax0.0" */
	struct p2p_dax_dma *dma;	/* the DMA engine's character device */
};

/* The dax region's parent; freed by its release callback. */
struct p2p_dax_region {
	struct auxiliary_device adev;
	struct p2p_dax *p2p;		/* valid while the PCI device is bound */
};

static const struct pci_device_id p2p_dax_ids[] = {
	/* All four IDs (hw/spec/regmap.py): other designs on Xilinx's vendor ID may
	 * share a device ID, not the subsystem. */
	{ PCI_DEVICE_SUB(P2P_DAX_PCI_VENDOR_ID, P2P_DAX_PCI_DEVICE_ID,
			 P2P_DAX_PCI_SUBSYSTEM_VENDOR_ID, P2P_DAX_PCI_SUBSYSTEM_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, p2p_dax_ids);

/* Auxiliary driver: creates the dax region and its one dax device. */
static int p2p_dax_region_probe(struct auxiliary_device *adev,
				const struct auxiliary_device_id *id)
{
	struct p2p_dax *p2p = container_of(adev, struct p2p_dax_region, adev)->p2p;
	resource_size_t start = pci_resource_start(p2p->pdev, p2p->bar);
	struct range range = { .start = start, .end = start + p2p->dax_size - 1 };
	struct dev_pagemap pgmap = { .range = range, .nr_range = 1 };
	struct dev_dax_data data = { };
	struct dax_region *region;
	struct dev_dax *dev_dax;

	region = alloc_dax_region(&adev->dev, p2p->region_id, &range, NUMA_NO_NODE, dax_align,
				  P2P_DAX_IORESOURCE_DAX_STATIC);
	if (!region) {
		dev_err(&adev->dev, "the dax core refused region %#llx-%#llx\n",
			range.start, range.end);
		return -ENOMEM;
	}
	data.dax_region = region;
	data.pgmap = &pgmap;
	data.size = range_len(&range);
	data.id = 0;
	dev_dax = devm_create_dev_dax(&data);
	p2p_dax_region_put(region);
	if (IS_ERR(dev_dax)) {
		dev_err(&adev->dev, "creating the dax device failed: %pe\n", dev_dax);
		return PTR_ERR(dev_dax);
	}
	/* The dax core names its devices dax<region id>.<id>. */
	snprintf(p2p->dax_name, sizeof(p2p->dax_name), "dax%d.%d", p2p->region_id, data.id);
	return 0;
}

static void p2p_dax_region_remove(struct auxiliary_device *adev)
{
	/* The dax device and region go with the devres of this binding. */
}

static const struct auxiliary_device_id p2p_dax_region_ids[] = {
	{ .name = KBUILD_MODNAME ".dax" },
	{ }
};
MODULE_DEVICE_TABLE(auxiliary, p2p_dax_region_ids);

/*
 * No bind/unbind in sysfs: the dax device lives and dies with the PCI
 * binding, and unbinding the region alone would take the memory from under
 * a bound board.
 */
static struct auxiliary_driver p2p_dax_region_driver = {
	.name = "dax",
	.probe = p2p_dax_region_probe,
	.remove = p2p_dax_region_remove,
	.id_table = p2p_dax_region_ids,
	.driver.suppress_bind_attrs = true,
};

static void p2p_dax_region_release(struct device *dev)
{
	kfree(container_of(dev, struct p2p_dax_region, adev.dev));
}

/*
 * Deleting the auxiliary device unbinds it, which unmaps the dax device from
 * every process (a later access gets SIGBUS) and waits for pages pinned by
 * I/O in flight before the BAR's struct pages go.
 */
static void p2p_dax_remove_dax(void *data)
{
	struct auxiliary_device *adev = data;

	auxiliary_device_delete(adev);
	auxiliary_device_uninit(adev);
}

static void p2p_dax_free_region_id(void *data)
{
	memregion_free((int)(long)data);
}

/*
 * The dax core names devices dax<region id>.<id> and leaves region ids to
 * their providers: pmem, hmem and CXL all draw theirs from memregion_alloc(),
 * and so does p2p_dax, so that no two regions get the same name.
 */
static int p2p_dax_alloc_region_id(struct p2p_dax *p2p)
{
	int rc = memregion_alloc(GFP_KERNEL);

	if (rc < 0)
		return rc;
	p2p->region_id = rc;
	return devm_add_action_or_reset(&p2p->pdev->dev, p2p_dax_free_region_id,
					(void *)(long)p2p->region_id);
}

static int p2p_dax_add_dax(struct p2p_dax *p2p)
{
	struct device *dev = &p2p->pdev->dev;
	struct p2p_dax_region *region;
	int rc;

	rc = p2p_dax_alloc_region_id(p2p);
	if (rc)
		return rc;
	region = kzalloc(sizeof(*region), GFP_KERNEL);
	if (!region)
		return -ENOMEM;
	region->p2p = p2p;
	region->adev.name = "dax";
	region->adev.id = p2p->id;
	region->adev.dev.parent = dev;
	region->adev.dev.release = p2p_dax_region_release;
	rc = auxiliary_device_init(&region->adev);
	if (rc) {
		kfree(region);
		return rc;
	}
	rc = auxiliary_device_add(&region->adev);
	if (rc) {
		auxiliary_device_uninit(&region->adev);	/* frees region */
		return rc;
	}
	rc = devm_add_action_or_reset(dev, p2p_dax_remove_dax, &region->adev);
	if (rc)
		return rc;
	/* Probing is synchronous: the auxiliary driver has run by now. */
	if (!region->adev.dev.driver) {
		dev_err(dev, "no dax device for BAR%d (see the messages above)\n", p2p->bar);
		return -ENXIO;
	}
	return 0;
}

static int p2p_dax_add_p2pdma(struct p2p_dax *p2p)
{
	int rc;

	if (!IS_ENABLED(CONFIG_PCI_P2PDMA))
		return -EOPNOTSUPP;	/* refused at module load already */
	rc = pci_p2pdma_add_resource(p2p->pdev, p2p->bar, p2p->p2p_size, p2p->dax_size);
	if (rc) {
		dev_err(&p2p->pdev->dev, "pci_p2pdma_add_resource on BAR%d failed: %d\n",
			p2p->bar, rc);
		return rc;
	}
	pci_p2pmem_publish(p2p->pdev, true);
	return 0;
}

/*
 * The memory type of every mapping of the memory BAR. memremap_pages() (for
 * the dax device and for p2pmem) asks for write-back, PAGE_KERNEL; with a
 * write-combining PAT reservation held first, x86 gives it, the kernel's
 * direct map and every user mapping of /dev/daxN.M that type instead: reads
 * uncached, writes combined. Without PAT only the MTRRs would decide, and
 * firmware often leaves a 64-bit BAR write-back: refused.
 */
static int p2p_dax_reserve_memtype(struct p2p_dax *p2p)
{
	struct pci_dev *pdev = p2p->pdev;
	resource_size_t start = pci_resource_start(pdev, p2p->bar);
	int rc;

	if (!pat_enabled()) {
		dev_err(&pdev->dev, "PAT is off (nopat, or the CPU lacks it): BAR%d would be "
			"mapped with whatever memory type the MTRRs give it, possibly cacheable; "
			"boot without nopat\n", p2p->bar);
		return -EOPNOTSUPP;
	}
	rc = devm_arch_io_reserve_memtype_wc(&pdev->dev, start,
					     p2p->dax_size + p2p->p2p_size);
	if (rc)
		dev_err(&pdev->dev, "BAR%d: reserving the write-combining memory type failed "
			"(already mapped with another type?): %d\n", p2p->bar, rc);
	return rc;
}

/* Registers of a board in BAR0: identity, version, and BAR2's size. */
static int p2p_dax_check_board(struct p2p_dax *p2p)
{
	struct pci_dev *pdev = p2p->pdev;
	u32 id, major;
	u64 bar2_size;

	if (pci_resource_len(pdev, P2P_DAX_REG_BAR) < P2P_DAX_BAR0_SIZE) {
		dev_err(&pdev->dev, "BAR0 is %llu bytes; the p2p-dax registers need %u\n",
			(u64)pci_resource_len(pdev, P2P_DAX_REG_BAR), P2P_DAX_BAR0_SIZE);
		return -ENODEV;
	}
	id = ioread32(p2p->regs + P2P_DAX_REG_ID);
	if (id == 0xffffffff) {
		dev_err(&pdev->dev, "BAR0 reads all ones: the device does not answer "
			"(link down, or no bitstream loaded?)\n");
		return -EIO;
	}
	if (id != P2P_DAX_MAGIC) {
		dev_err(&pdev->dev, "ID register reads %#010x, not %#010x: not a p2p-dax "
			"bitstream\n", id, P2P_DAX_MAGIC);
		return -ENODEV;
	}
	p2p->version = ioread32(p2p->regs + P2P_DAX_REG_VERSION);
	major = (p2p->version & P2P_DAX_VERSION_MAJOR_MASK) >> P2P_DAX_VERSION_MAJOR_SHIFT;
	if (major != P2P_DAX_MAP_VERSION_MAJOR) {
		dev_err(&pdev->dev, "gateware register map version %u.x; this driver "
			"knows %u.x: update the driver or the bitstream\n",
			major, P2P_DAX_MAP_VERSION_MAJOR);
		return -ENODEV;
	}
	bar2_size = ioread32(p2p->regs + P2P_DAX_REG_BAR2_SIZE_LO) |
		    (u64)ioread32(p2p->regs + P2P_DAX_REG_BAR2_SIZE_HI) << 32;
	p2p->mem_size = ioread32(p2p->regs + P2P_DAX_REG_MEM_SIZE_LO) |
			(u64)ioread32(p2p->regs + P2P_DAX_REG_MEM_SIZE_HI) << 32;
	if (!p2p->mem_size || p2p->mem_size > bar2_size) {
		dev_err(&pdev->dev, "MEM_SIZE register reads %llu, not 1 to BAR2's %llu "
			"bytes: a broken bitstream\n", p2p->mem_size, bar2_size);
		return -ENODEV;
	}
	if (bar2_size != pci_resource_len(pdev, P2P_DAX_BOARD_MEM_BAR)) {
		dev_err(&pdev->dev, "BAR2 is %llu bytes but the gateware says %llu: the "
			"hard IP's BAR2 setting and the gateware disagree\n",
			(u64)pci_resource_len(pdev, P2P_DAX_BOARD_MEM_BAR), bar2_size);
		return -ENODEV;
	}
	return 0;
}

/*
 * What of the memory BAR is backed by memory: on a board, MEM_SIZE bytes
 * from the BAR's start (the gateware answers the rest with UR and drops
 * writes to it), rounded down to 2 MiB; the whole BAR otherwise. Only this
 * much is registered, so that no user ever sees bytes that are not there.
 */
static resource_size_t p2p_dax_backed(struct p2p_dax *p2p, resource_size_t len)
{
	struct pci_dev *pdev = p2p->pdev;
	resource_size_t backed = p2p->regs ? min_t(resource_size_t, len, p2p->mem_size) : len;

	backed = round_down(backed, P2P_DAX_MIN_ALIGN);
	if (!backed)
		dev_err(&pdev->dev, "BAR%d is backed by %llu bytes of memory (MEM_SIZE), less "
			"than the 2 MiB device-dax and p2pdma need: build the gateware with "
			"mem_size of 2 MiB or more (or with the board's DRAM)\n", p2p->bar,
			(u64)p2p->mem_size);
	else if (backed < len)
		dev_info(&pdev->dev, "BAR%d: %llu of its %llu bytes are backed by memory; "
			 "registering those\n", p2p->bar, (u64)backed, (u64)len);
	return backed;
}

/* The memory BAR: 64-bit prefetchable memory, assigned, 2 MiB sized and aligned. */
static int p2p_dax_check_bar(struct p2p_dax *p2p)
{
	struct pci_dev *pdev = p2p->pdev;
	unsigned long flags = pci_resource_flags(pdev, p2p->bar);
	resource_size_t start = pci_resource_start(pdev, p2p->bar);
	resource_size_t len = pci_resource_len(pdev, p2p->bar);
	int bar = p2p->bar;

	if (!len || !(flags & IORESOURCE_MEM)) {
		dev_err(&pdev->dev, "BAR%d is not a memory BAR%s\n", bar,
			memory_bar >= 0 ? ": check memory_bar" : "");
		return -ENODEV;
	}
	if (!(flags & IORESOURCE_MEM_64) || !(flags & IORESOURCE_PREFETCH)) {
		dev_err(&pdev->dev, "BAR%d is %s%s; p2p_dax needs a 64-bit prefetchable "
			"memory BAR\n", bar, flags & IORESOURCE_MEM_64 ? "64-bit" : "32-bit",
			flags & IORESOURCE_PREFETCH ? "" : " non-prefetchable");
		return -ENODEV;
	}
	if ((flags & IORESOURCE_UNSET) || !start) {
		dev_err(&pdev->dev, "BAR%d has no address assigned: the firmware found no "
			"room (try booting with pci=realloc)\n", bar);
		return -ENODEV;
	}
	if (len < P2P_DAX_MIN_ALIGN || !IS_ALIGNED(len, P2P_DAX_MIN_ALIGN) ||
	    !IS_ALIGNED(start, P2P_DAX_MIN_ALIGN)) {
		dev_err(&pdev->dev, "BAR%d is %llu bytes at %pa; p2p_dax needs at least "
			"2 MiB, a multiple of 2 MiB, at a 2 MiB aligned address\n",
			bar, (u64)len, &start);
		return -ENODEV;
	}
	len = p2p_dax_backed(p2p, len);
	if (!len)
		return -ENODEV;

	switch (p2p_dax_mode) {
	case P2P_DAX_MODE_DAX:
		p2p->dax_size = len;
		break;
	case P2P_DAX_MODE_P2PDMA:
		p2p->p2p_size = len;
		break;
	case P2P_DAX_MODE_BOTH:
		p2p->p2p_size = p2pdma_size ?: round_down(len / 2, P2P_DAX_MIN_ALIGN);
		if (!p2p->p2p_size || p2p->p2p_size >= len) {
			dev_err(&pdev->dev, "mode=both needs room for both parts in BAR%d "
				"(%llu bytes backed): p2pdma_size must be 2 MiB to %llu\n", bar,
				(u64)len, (u64)len - P2P_DAX_MIN_ALIGN);
			return -EINVAL;
		}
		p2p->dax_size = len - p2p->p2p_size;
		break;
	}
	if (p2p->dax_size && !IS_ALIGNED(p2p->dax_size, dax_align)) {
		dev_err(&pdev->dev, "the dax part of BAR%d (%llu bytes) is not a multiple "
			"of align=%u\n", bar, (u64)p2p->dax_size, dax_align);
		return -EINVAL;
	}
	return 0;
}

/*
 * The DMA engine and its character device, /dev/p2p-dax<id> (ioctls in
 * p2p_dax_ioctl.h).
 *
 * A transfer pins the caller's buffer, maps it for the board and is cut into
 * descriptors, one per mapped segment (split at DMA_MAX_LENGTH). The engine
 * ends descriptors in the order they were queued, descriptor number k
 * reporting in result slot k % DMA_RESULTS, so the driver keeps at most
 * DMA_RESULTS descriptors in the engine and a slot array that says which
 * transfer each belongs to. An MSI-X interrupt on the last descriptor of a
 * transfer, and every half queue while more wait, wakes a threaded handler
 * that reads DMA_DONE and the result slots, ends transfers, unpins their
 * pages and queues what waits.
 *
 * Limits: P2P_DAX_DMA_MAX_TRANSFERS per open file; max_transfers and
 * max_pinned (module parameters) for the whole device; and every pinned page
 * is charged to the submitter's RLIMIT_MEMLOCK until it is unpinned, which
 * may be after the file is closed (the mm is held for that). Closing a file
 * cancels its transfers (CANCEL does so for one): what is not in the engine
 * yet is dropped at once.
 *
 * The per-board state is reference-counted: the binding holds one reference
 * and every open file one, so the character device outlives the PCI binding.
 * Unbinding stops submissions, waits a bounded time for the engine, turns
 * bus mastering off, then unmaps and unpins everything; the open files then
 * get ENODEV from every ioctl.
 */
#define P2P_DAX_DMA_SLOTS		P2P_DAX_DMA_RESULTS
#define P2P_DAX_DMA_VECTOR		0
#define P2P_DAX_DMA_MAX_TRANSFER	SZ_256M
#define P2P_DAX_DMA_MAX_TRANSFERS	32	/* per open file */
#define P2P_DAX_DMA_STOP_MS		1000	/* an abort: wait for DMA_DONE to catch up */

static_assert(P2P_DAX_DMA_SLOTS <= P2P_DAX_DMA_QUEUE_DEPTH);
static_assert(P2P_DAX_DMA_MAX_LENGTH % PAGE_SIZE == 0);
static_assert(sizeof(struct p2p_dax_info) == P2P_DAX_INFO_SIZE_VER1);
static_assert(sizeof(struct p2p_dax_dma_submit) == P2P_DAX_DMA_SUBMIT_SIZE_VER1);
static_assert(sizeof(struct p2p_dax_dma_wait) == P2P_DAX_DMA_WAIT_SIZE_VER1);
static_assert(sizeof(struct p2p_dax_dma_cancel) == P2P_DAX_DMA_CANCEL_SIZE_VER1);

static const char * const p2p_dax_engine_names[] = {
	[P2P_DAX_ENGINE_NONE] = "none",
	[P2P_DAX_ENGINE_ABSENT] = "absent",
	[P2P_DAX_ENGINE_UNUSABLE] = "unusable",
	[P2P_DAX_ENGINE_READY] = "ready",
};

static const char *p2p_dax_dma_status_name(u32 status)
{
	static const char * const names[] = {
		"OK", "unsupported request", "completer abort", "completion timeout",
		"poisoned completion", "bad completion", "bad descriptor",
	};

	return status < ARRAY_SIZE(names) ? names[status] : "unknown status";
}

struct p2p_dax_file;

struct p2p_dax_xfer {
	struct p2p_dax_file *file;	/* NULL once its file is closed */
	struct list_head file_node;	/* in file->xfers while file is set */
	struct list_head active_node;	/* in dma->active until it ends */
	struct list_head queue_node;	/* in dma->queue while parts wait */
	u64 id;
	u64 offset;			/* in BAR2 */
	u64 length;
	u32 direction;			/* P2P_DAX_DMA_TO_BAR or _FROM_BAR */
	struct page **pages;		/* pinned; NULL once released */
	unsigned long npages;		/* charged to mm's locked_vm and dma->pinned */
	struct mm_struct *mm;		/* the submitter's, held while charged */
	struct sg_table sgt;
	bool mapped;
	/* The next part to queue: DMA segment sg, sg_off bytes into it. */
	struct scatterlist *sg;
	unsigned int sg_left;		/* DMA segments from sg on */
	u32 sg_off;
	u64 queued;			/* bytes queued */
	unsigned int out;		/* descriptors in the engine */
	/* How it ended. */
	u64 bytes;			/* moved by descriptors that ended OK */
	u64 error_offset;
	u32 status;			/* first status other than OK */
	bool done;
	bool waiting;			/* a WAIT sleeps on it */
};

struct p2p_dax_dma_slot {
	struct p2p_dax_xfer *xfer;	/* NULL: no descriptor of the driver's */
	u32 length;
	u64 xoff;			/* offset in the transfer */
};

struct p2p_dax_dma {
	struct kref ref;		/* the binding's and every open file's */
	struct mutex lock;		/* everything below; the irq handler is threaded */
	wait_queue_head_t wq;		/* WAITs: a transfer ended */
	struct miscdevice misc;
	bool registered;		/* misc is registered */
	char name[24];			/* p2p-dax<id>: the node and the irq's name */
	struct pci_dev *pdev;		/* NULL once unbound */
	void __iomem *regs;		/* BAR0; NULL in memory-only mode and once unbound */
	bool gone;			/* unbinding: ioctls answer ENODEV */
	u32 engine;			/* P2P_DAX_ENGINE_* */
	int irq;
	u64 mem_size, bar_size, dma_window;
	u32 version;
	/* Limits of the whole device, and what all files hold now. */
	u32 max_xfers, nr_xfers;	/* transfers allocated, not yet freed */
	u64 max_pinned, pinned;		/* bytes of pages charged */
	u32 hw_next;			/* number of the next descriptor queued */
	u32 hw_done;			/* descriptors whose end was processed */
	struct p2p_dax_dma_slot slots[P2P_DAX_DMA_SLOTS];
	struct list_head queue;		/* transfers with parts to queue, in order */
	struct list_head active;	/* transfers not ended */
	u64 stat_submitted, stat_done, stat_failed, stat_bytes;
	u64 fault_bus;			/* debugfs: the next descriptor's bus address */
	struct delayed_work watchdog;	/* runs while descriptors are in flight */
	u32 watch_done;			/* hw_done at its last run */
	struct dentry *debugfs;
};

struct p2p_dax_file {
	struct p2p_dax_dma *dma;
	struct list_head xfers;		/* under dma->lock */
	unsigned int count;
	u64 next_id;
};

static void p2p_dax_dma_free(struct kref *ref)
{
	kfree(container_of(ref, struct p2p_dax_dma, ref));
}

static enum dma_data_direction p2p_dax_xfer_dir(const struct p2p_dax_xfer *t)
{
	return t->direction == P2P_DAX_DMA_TO_BAR ? DMA_TO_DEVICE : DMA_FROM_DEVICE;
}

/*
 * Under dma->lock: give back the buffer, the device will not touch it again;
 * the pages stop counting against the submitter's RLIMIT_MEMLOCK and the
 * device's max_pinned.
 */
static void p2p_dax_xfer_release(struct p2p_dax_dma *dma, struct p2p_dax_xfer *t)
{
	if (t->mapped)
		dma_unmap_sgtable(&dma->pdev->dev, &t->sgt, p2p_dax_xfer_dir(t), 0);
	t->mapped = false;
	sg_free_table(&t->sgt);
	if (t->pages) {
		unpin_user_pages_dirty_lock(t->pages, t->npages,
					    t->direction == P2P_DAX_DMA_FROM_BAR);
		kvfree(t->pages);
		t->pages = NULL;
	}
	if (t->mm) {
		account_locked_vm(t->mm, t->npages, false);
		mmdrop(t->mm);
		t->mm = NULL;
		dma->pinned -= (u64)t->npages << PAGE_SHIFT;
	}
}

/* Under dma->lock: the transfer is forgotten (released already). */
static void p2p_dax_xfer_free(struct p2p_dax_dma *dma, struct p2p_dax_xfer *t)
{
	dma->nr_xfers--;
	kfree(t);
}

/* Under dma->lock: the transfer has ended (or the board is going away). */
static void p2p_dax_xfer_end(struct p2p_dax_dma *dma, struct p2p_dax_xfer *t)
{
	list_del_init(&t->active_node);
	list_del_init(&t->queue_node);
	p2p_dax_xfer_release(dma, t);
	t->done = true;
	if (!t->file)
		p2p_dax_xfer_free(dma, t);	/* its file was closed: nobody waits */
	else
		wake_up_all(&dma->wq);
}

/*
 * Under dma->lock: queue no more of the transfer. It ends now if none of it
 * is in the engine, else when that ends. False: nothing was left to queue.
 */
static bool p2p_dax_xfer_cancel(struct p2p_dax_dma *dma, struct p2p_dax_xfer *t)
{
	if (t->done || list_empty(&t->queue_node))
		return false;
	list_del_init(&t->queue_node);
	if (t->status == P2P_DAX_DMA_STATUS_OK) {
		t->status = P2P_DAX_DMA_STATUS_CANCELLED;
		t->error_offset = t->queued;
	}
	if (!t->out)
		p2p_dax_xfer_end(dma, t);
	return true;
}

/* Under dma->lock: queue parts of waiting transfers while the engine has room. */
static void p2p_dax_dma_pump(struct p2p_dax_dma *dma)
{
	u32 room = P2P_DAX_DMA_SLOTS - (dma->hw_next - dma->hw_done);

	if (dma->gone || !room || list_empty(&dma->queue))
		return;
	room = min(room, ioread32(dma->regs + P2P_DAX_REG_DMA_SUBMIT));
	while (room && !list_empty(&dma->queue)) {
		struct p2p_dax_xfer *t = list_first_entry(&dma->queue, struct p2p_dax_xfer,
							  queue_node);
		struct p2p_dax_dma_slot *slot = &dma->slots[dma->hw_next % P2P_DAX_DMA_SLOTS];
		dma_addr_t bus = sg_dma_address(t->sg) + t->sg_off;
		u32 len = min_t(u32, sg_dma_len(t->sg) - t->sg_off, P2P_DAX_DMA_MAX_LENGTH);
		u64 xoff = t->queued;
		bool last, irq;
		u32 ctl;

		t->sg_off += len;
		t->queued += len;
		if (t->sg_off == sg_dma_len(t->sg)) {
			t->sg = sg_next(t->sg);
			t->sg_off = 0;
			t->sg_left--;
		}
		last = !t->sg_left;
		if (last)
			list_del_init(&t->queue_node);
		room--;
		/*
		 * An interrupt when a transfer ends and, while parts wait, every
		 * half queue, so the engine has work while the driver refills it.
		 */
		irq = last || !room || dma->hw_next % (P2P_DAX_DMA_SLOTS / 2) ==
				      P2P_DAX_DMA_SLOTS / 2 - 1;
		ctl = (t->direction == P2P_DAX_DMA_TO_BAR ? P2P_DAX_DMA_CONTROL_FROM_BUS_MASK : 0) |
		      (irq ? P2P_DAX_DMA_CONTROL_IRQ_MASK : 0) |
		      P2P_DAX_DMA_VECTOR << P2P_DAX_DMA_CONTROL_VECTOR_SHIFT |
		      (dma->hw_next & 0xffff) << P2P_DAX_DMA_CONTROL_ID_SHIFT;
		if (dma->fault_bus) {
			bus = dma->fault_bus;	/* injected: see p2p_dax_fault_bus_set() */
			dma->fault_bus = 0;
		}
		iowrite32(lower_32_bits(t->offset + xoff), dma->regs + P2P_DAX_REG_DMA_LOCAL);
		iowrite32(lower_32_bits(bus), dma->regs + P2P_DAX_REG_DMA_BUS_LO);
		iowrite32(upper_32_bits(bus), dma->regs + P2P_DAX_REG_DMA_BUS_HI);
		iowrite32(len, dma->regs + P2P_DAX_REG_DMA_LENGTH);
		iowrite32(ctl, dma->regs + P2P_DAX_REG_DMA_CONTROL);
		iowrite32(1, dma->regs + P2P_DAX_REG_DMA_SUBMIT);
		slot->xfer = t;
		slot->length = len;
		slot->xoff = xoff;
		t->out++;
		dma->hw_next++;
		dma->stat_submitted++;
	}
	if (!delayed_work_pending(&dma->watchdog)) {
		dma->watch_done = dma->hw_done;
		schedule_delayed_work(&dma->watchdog, msecs_to_jiffies(dma_deadline_ms));
	}
}


/*
 * Under dma->lock: process the descriptors that ended. Returns false when
 * DMA_DONE makes no sense (the device is gone or was reset).
 */
static bool p2p_dax_dma_reap(struct p2p_dax_dma *dma)
{
	u32 done = ioread32(dma->regs + P2P_DAX_REG_DMA_DONE);
	u32 inflight = dma->hw_next - dma->hw_done;

	if (done - dma->hw_done > inflight) {
		dev_err_ratelimited(&dma->pdev->dev, "DMA_DONE reads %#x, but the driver has "
				    "descriptors %#x to %#x in flight: device reset or gone?\n",
				    done, dma->hw_done, dma->hw_next - 1);
		return false;
	}
	while (dma->hw_done != done) {
		u32 k = dma->hw_done;
		struct p2p_dax_dma_slot *slot = &dma->slots[k % P2P_DAX_DMA_SLOTS];
		struct p2p_dax_xfer *t = slot->xfer;
		u32 res = ioread32(dma->regs + P2P_DAX_REG_DMA_RESULT0 + 4 * (k % P2P_DAX_DMA_SLOTS));
		u32 status = (res & P2P_DAX_DMA_RESULT0_STATUS_MASK) >> P2P_DAX_DMA_RESULT0_STATUS_SHIFT;

		if ((res & P2P_DAX_DMA_RESULT0_SEQ_MASK) >> P2P_DAX_DMA_RESULT0_SEQ_SHIFT != (k & 0xff) ||
		    (res & P2P_DAX_DMA_RESULT0_ID_MASK) >> P2P_DAX_DMA_RESULT0_ID_SHIFT != (k & 0xffff)) {
			dev_err_ratelimited(&dma->pdev->dev, "DMA_RESULT%u reads %#010x, not the "
					    "result of descriptor %#x\n",
					    k % P2P_DAX_DMA_SLOTS, res, k);
			status = P2P_DAX_DMA_STATUS_BAD_RESULT;
		}
		slot->xfer = NULL;
		dma->hw_done++;
		dma->stat_done++;
		if (!t)			/* cannot happen: ended <= in flight */
			continue;
		t->out--;
		if (status == P2P_DAX_DMA_STATUS_OK) {
			t->bytes += slot->length;
			dma->stat_bytes += slot->length;
		} else {
			dma->stat_failed++;
			if (status < P2P_DAX_DMA_STATUS_BAD_RESULT &&
			    status != P2P_DAX_DMA_STATUS_ABORTED)
				dev_warn_ratelimited(&dma->pdev->dev, "DMA %s BAR2 %#llx, %u bytes: "
						     "%s\n", t->direction == P2P_DAX_DMA_TO_BAR ?
						     "to" : "from", t->offset + slot->xoff,
						     slot->length, p2p_dax_dma_status_name(status));
			if (t->status == P2P_DAX_DMA_STATUS_OK) {
				t->status = status;
				t->error_offset = slot->xoff;
			}
			list_del_init(&t->queue_node);	/* queue no more of it */
		}
		if (!t->out && list_empty(&t->queue_node))
			p2p_dax_xfer_end(dma, t);
	}
	return true;
}

/*
 * Under dma->lock: end every descriptor in the engine (DMA_ABORT: status
 * ABORTED, a write packet already started goes out whole, outstanding reads
 * are given up) and wait for DMA_DONE to catch up. True once it has: the
 * engine sends nothing more for them and their buffers may be unmapped.
 */
static bool p2p_dax_dma_abort(struct p2p_dax_dma *dma)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(P2P_DAX_DMA_STOP_MS);

	iowrite32(1, dma->regs + P2P_DAX_REG_DMA_ABORT);
	for (;;) {
		if (!p2p_dax_dma_reap(dma))
			return false;
		if (dma->hw_next == dma->hw_done)
			return true;
		if (time_after(jiffies, deadline))
			return false;
		usleep_range(1000, 2000);
	}
}

/* No descriptor ended for dma_deadline_ms while some were in flight: abort. */
static void p2p_dax_dma_watchdog(struct work_struct *work)
{
	struct p2p_dax_dma *dma = container_of(to_delayed_work(work), struct p2p_dax_dma,
					       watchdog);
	u32 inflight;

	mutex_lock(&dma->lock);
	if (dma->gone || !dma->regs || !p2p_dax_dma_reap(dma))
		goto unlock;
	inflight = dma->hw_next - dma->hw_done;
	if (inflight && dma->hw_done == dma->watch_done) {
		dev_warn(&dma->pdev->dev, "DMA engine: no descriptor ended for %u ms, %u in "
			 "flight (bus mastering %s): aborted, their transfers end ABORTED\n",
			 dma_deadline_ms, inflight,
			 ioread32(dma->regs + P2P_DAX_REG_DMA_STATE) &
			 P2P_DAX_DMA_STATE_BUS_MASTER_MASK ? "on" : "off");
		if (!p2p_dax_dma_abort(dma))
			dev_err(&dma->pdev->dev, "DMA engine: the abort did not end its "
				"descriptors; reset the device (sysfs reset)\n");
		p2p_dax_dma_pump(dma);		/* what was queued behind them */
	} else if (inflight) {
		dma->watch_done = dma->hw_done;
		schedule_delayed_work(&dma->watchdog, msecs_to_jiffies(dma_deadline_ms));
	}
unlock:
	mutex_unlock(&dma->lock);
}

static irqreturn_t p2p_dax_dma_irq(int irq, void *data)
{
	struct p2p_dax_dma *dma = data;

	mutex_lock(&dma->lock);
	if (dma->regs && p2p_dax_dma_reap(dma))
		p2p_dax_dma_pump(dma);
	mutex_unlock(&dma->lock);
	return IRQ_HANDLED;
}

/* ioctls: the struct's size is the caller's, from the ioctl number. */
static long p2p_dax_ioc_info(struct p2p_dax_file *f, void __user *arg, size_t usize)
{
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_info info = {
		.api_version = P2P_DAX_API_VERSION,
		.engine = dma->engine,
		.mem_size = dma->mem_size,
		.bar_size = dma->bar_size,
		.gateware_version = dma->version,
	};

	mutex_lock(&dma->lock);
	if (dma->gone) {
		mutex_unlock(&dma->lock);
		return -ENODEV;
	}
	if (dma->engine == P2P_DAX_ENGINE_READY) {
		info.dma_window = dma->dma_window;
		info.max_transfer = P2P_DAX_DMA_MAX_TRANSFER;
		info.max_segment = P2P_DAX_DMA_MAX_LENGTH;
		info.queue_depth = P2P_DAX_DMA_SLOTS;
		info.max_transfers = P2P_DAX_DMA_MAX_TRANSFERS;
	}
	if (dma->engine >= P2P_DAX_ENGINE_UNUSABLE) {
		info.hw_state = ioread32(dma->regs + P2P_DAX_REG_DMA_STATE);
		info.hw_overflow = ioread32(dma->regs + P2P_DAX_REG_DMA_ERR_OVERFLOW);
	}
	info.transfers = f->count;
	info.device_max_transfers = dma->max_xfers;
	info.device_transfers = dma->nr_xfers;
	info.max_pinned = dma->max_pinned;
	info.pinned = dma->pinned;
	info.descriptors_submitted = dma->stat_submitted;
	info.descriptors_done = dma->stat_done;
	info.descriptors_failed = dma->stat_failed;
	info.bytes_done = dma->stat_bytes;
	mutex_unlock(&dma->lock);

	if (copy_to_user(arg, &info, min(usize, sizeof(info))))
		return -EFAULT;
	if (usize > sizeof(info) && clear_user(arg + sizeof(info), usize - sizeof(info)))
		return -EFAULT;
	return 0;
}

/* The PCI device (with a reference) whose memory BAR holds phys, or NULL. */
static struct pci_dev *p2p_dax_bar_owner(phys_addr_t phys, int *bar)
{
	struct pci_dev *pdev = NULL;

	for_each_pci_dev(pdev) {
		for (*bar = 0; *bar < PCI_STD_NUM_BARS; (*bar)++) {
			struct resource *r = &pdev->resource[*bar];

			if (resource_type(r) == IORESOURCE_MEM && r->start <= phys &&
			    phys <= r->end)
				return pdev;
		}
	}
	return NULL;
}

/*
 * Peer memory only through the kernel's P2P rules. P2PDMA pages (a peer's
 * p2pmem) are pinned with FOLL_PCI_P2PDMA and mapped by dma_map_sgtable(),
 * which applies the rules: P2P distance, ACS, the host bridge list, bus
 * offsets; it answers EREMOTEIO where the peer is out of reach. Any other
 * device page inside a PCI BAR (a peer's device-dax mapping: its pages are
 * MEMORY_DEVICE_GENERIC) would be mapped as if it were RAM: refused.
 * Device pages outside every BAR (pmem, hmem, CXL memory) are memory.
 */
static int p2p_dax_check_peer(struct p2p_dax_dma *dma, struct page **pages,
			      unsigned long npages)
{
	const struct dev_pagemap *memory = NULL;	/* checked: not a BAR */
	struct pci_dev *owner;
	unsigned long i;
	int bar;

	for (i = 0; i < npages; i++) {
		struct page *page = pages[i];

		if (!is_zone_device_page(page) || p2p_dax_page_pgmap(page) == memory)
			continue;
		if (is_pci_p2pdma_page(page)) {
			if (P2P_DAX_FOLL_PCI_P2PDMA)
				continue;
			dev_warn_ratelimited(&dma->pdev->dev,
					     "P2PDMA buffer refused: this kernel's DMA API maps P2PDMA pages as RAM (Linux 6.2 or later needed)\n");
			return -EREMOTEIO;
		}
		owner = p2p_dax_bar_owner(page_to_phys(page), &bar);
		if (!owner) {
			memory = p2p_dax_page_pgmap(page);
			continue;
		}
		dev_warn_ratelimited(&dma->pdev->dev,
				     "buffer refused: it maps BAR%d of %s without P2PDMA (device-dax?), which would bypass the kernel's P2P checks; use the peer's p2pmem/allocate\n",
				     bar, pci_name(owner));
		pci_dev_put(owner);
		return -EXDEV;
	}
	return 0;
}

/* Pin the buffer (t->npages pages) and build its sg table; not mapped yet. */
static int p2p_dax_xfer_pin(struct p2p_dax_dma *dma, struct p2p_dax_xfer *t, u64 addr)
{
	unsigned long first = addr & PAGE_MASK;
	unsigned long pinned = 0;
	int rc;

	t->pages = kvmalloc_array(t->npages, sizeof(*t->pages), GFP_KERNEL);
	if (!t->pages)
		return -ENOMEM;
	while (pinned < t->npages) {
		rc = pin_user_pages_fast(first + pinned * PAGE_SIZE, t->npages - pinned,
					 P2P_DAX_FOLL_PCI_P2PDMA |
					 (t->direction == P2P_DAX_DMA_FROM_BAR ? FOLL_WRITE : 0),
					 t->pages + pinned);
		if (rc <= 0) {
			rc = rc ?: -EFAULT;
			goto unpin;
		}
		pinned += rc;
	}
	rc = p2p_dax_check_peer(dma, t->pages, t->npages);
	if (rc)
		goto unpin;
	rc = sg_alloc_table_from_pages_segment(&t->sgt, t->pages, t->npages,
					       offset_in_page(addr), t->length,
					       P2P_DAX_DMA_MAX_LENGTH, GFP_KERNEL);
	if (!rc)
		return 0;
unpin:
	unpin_user_pages(t->pages, pinned);
	kvfree(t->pages);
	t->pages = NULL;
	return rc;
}

/*
 * Count a new transfer against its file's and the device's limits, and charge
 * its pages to the caller's RLIMIT_MEMLOCK (as mlock and VFIO do), before
 * anything is pinned.
 */
static int p2p_dax_xfer_reserve(struct p2p_dax_file *f, struct p2p_dax_xfer *t)
{
	struct p2p_dax_dma *dma = f->dma;
	u64 bytes = (u64)t->npages << PAGE_SHIFT;
	int rc = 0;

	mutex_lock(&dma->lock);
	if (dma->gone)
		rc = -ENODEV;
	else if (f->count >= P2P_DAX_DMA_MAX_TRANSFERS || dma->nr_xfers >= dma->max_xfers ||
		 bytes > dma->max_pinned - dma->pinned)
		rc = -EAGAIN;
	else
		rc = account_locked_vm(current->mm, t->npages, true);
	if (!rc) {
		f->count++;
		dma->nr_xfers++;
		dma->pinned += bytes;
		t->mm = current->mm;
		mmgrab(t->mm);
	}
	mutex_unlock(&dma->lock);
	return rc;
}

static long p2p_dax_ioc_submit(struct p2p_dax_file *f, void __user *arg, size_t usize)
{
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_dma_submit s;
	struct p2p_dax_xfer *t;
	int rc;

	rc = copy_struct_from_user(&s, sizeof(s), arg, usize);
	if (rc)
		return rc;
	if (READ_ONCE(dma->gone))
		return -ENODEV;
	/* Arguments first, so that they are checked on every device the same way. */
	if ((s.direction != P2P_DAX_DMA_TO_BAR && s.direction != P2P_DAX_DMA_FROM_BAR) ||
	    s.flags || s.reserved[0] || s.reserved[1] || s.reserved[2])
		return -EINVAL;
	if (!s.length || s.length > P2P_DAX_DMA_MAX_TRANSFER || s.addr + s.length < s.addr)
		return -EINVAL;
	if (s.offset >= dma->dma_window || s.length > dma->dma_window - s.offset)
		return -ERANGE;
	if (dma->engine != P2P_DAX_ENGINE_READY)
		return -EOPNOTSUPP;
	if (s.addr + s.length > TASK_SIZE)
		return -EFAULT;

	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	INIT_LIST_HEAD(&t->file_node);
	INIT_LIST_HEAD(&t->active_node);
	INIT_LIST_HEAD(&t->queue_node);
	t->offset = s.offset;
	t->length = s.length;
	t->direction = s.direction;
	t->npages = (PAGE_ALIGN(s.addr + s.length) - (s.addr & PAGE_MASK)) >> PAGE_SHIFT;
	rc = p2p_dax_xfer_reserve(f, t);
	if (rc) {
		kfree(t);
		return rc;
	}
	rc = p2p_dax_xfer_pin(dma, t, s.addr);
	mutex_lock(&dma->lock);
	if (!rc && dma->gone)
		rc = -ENODEV;
	if (rc)
		goto unlock;
	/* Under the lock: unbinding cannot take the device away meanwhile. */
	rc = dma_map_sgtable(&dma->pdev->dev, &t->sgt, p2p_dax_xfer_dir(t), 0);
	if (rc == -EREMOTEIO)
		dev_warn_ratelimited(&dma->pdev->dev,
				     "buffer refused: the kernel's P2P rules do not let this board reach the peer's p2pmem (no common switch, ACS, or a host bridge not on the kernel's list)\n");
	if (rc)
		goto unlock;
	t->mapped = true;
	t->sg = t->sgt.sgl;
	t->sg_left = t->sgt.nents;
	t->id = f->next_id++;
	t->file = f;
	list_add_tail(&t->file_node, &f->xfers);
	list_add_tail(&t->active_node, &dma->active);
	list_add_tail(&t->queue_node, &dma->queue);
	p2p_dax_dma_pump(dma);
	s.id = t->id;
	mutex_unlock(&dma->lock);
	/* The transfer runs; a bad pointer now only loses its id. */
	if (copy_to_user(arg, &s, min(usize, sizeof(s))))
		return -EFAULT;
	return 0;

unlock:
	p2p_dax_xfer_release(dma, t);
	f->count--;
	p2p_dax_xfer_free(dma, t);
	mutex_unlock(&dma->lock);
	return rc;
}

static int p2p_dax_status_errno(u32 status)
{
	switch (status) {
	case P2P_DAX_DMA_STATUS_OK:
		return 0;
	case P2P_DAX_DMA_STATUS_TIMEOUT:
	case P2P_DAX_DMA_STATUS_ABORTED:
		return -ETIMEDOUT;
	case P2P_DAX_DMA_STATUS_GONE:
		return -ENODEV;
	case P2P_DAX_DMA_STATUS_CANCELLED:
		return -ECANCELED;
	default:
		return -EIO;
	}
}

/* Under dma->lock: the file's transfer `id`, or NULL and *rc says why. */
static struct p2p_dax_xfer *p2p_dax_xfer_find(struct p2p_dax_file *f, u64 id, int *rc)
{
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_xfer *t;

	list_for_each_entry(t, &f->xfers, file_node)
		if (t->id == id)
			return t;
	*rc = dma->gone ? -ENODEV : dma->engine != P2P_DAX_ENGINE_READY ? -EOPNOTSUPP : -ENOENT;
	return NULL;
}

static long p2p_dax_ioc_cancel(struct p2p_dax_file *f, void __user *arg, size_t usize)
{
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_dma_cancel c;
	struct p2p_dax_xfer *t;
	int rc;

	rc = copy_struct_from_user(&c, sizeof(c), arg, usize);
	if (rc)
		return rc;
	if (c.flags || c.reserved0 || c.reserved[0] || c.reserved[1])
		return -EINVAL;
	mutex_lock(&dma->lock);
	t = p2p_dax_xfer_find(f, c.id, &rc);
	if (t)		/* t stays: only WAIT and the file's release free it */
		rc = p2p_dax_xfer_cancel(dma, t) ? 0 : -EALREADY;
	mutex_unlock(&dma->lock);
	return rc;
}

static long p2p_dax_ioc_wait(struct p2p_dax_file *f, void __user *arg, size_t usize)
{
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_dma_wait w;
	struct p2p_dax_xfer *t;
	long left = 1;
	int rc;

	rc = copy_struct_from_user(&w, sizeof(w), arg, usize);
	if (rc)
		return rc;
	if (w.flags || w.reserved[0] || w.reserved[1])
		return -EINVAL;

	mutex_lock(&dma->lock);
	t = p2p_dax_xfer_find(f, w.id, &rc);
	if (!t) {
		mutex_unlock(&dma->lock);
		return rc;
	}
	if (t->waiting) {
		mutex_unlock(&dma->lock);
		return -EBUSY;
	}
	if (!t->done && !dma->gone && w.timeout_ms) {
		/* Only this WAIT and the file's release free t: it stays. */
		t->waiting = true;
		mutex_unlock(&dma->lock);
		if (w.timeout_ms == P2P_DAX_WAIT_FOREVER)
			left = wait_event_interruptible(dma->wq, READ_ONCE(t->done)) ? -EINTR : 1;
		else
			left = wait_event_interruptible_timeout(dma->wq, READ_ONCE(t->done),
								msecs_to_jiffies(w.timeout_ms));
		mutex_lock(&dma->lock);
		t->waiting = false;
	}
	/* An interrupt lost on the way does not leave the transfer hanging. */
	if (!t->done && !dma->gone && p2p_dax_dma_reap(dma))
		p2p_dax_dma_pump(dma);

	w.done = t->done;
	w.bytes = t->bytes;
	w.status = t->done ? t->status : P2P_DAX_DMA_STATUS_RUNNING;
	w.error_offset = t->status != P2P_DAX_DMA_STATUS_OK ? t->error_offset : 0;
	if (t->done) {
		rc = p2p_dax_status_errno(t->status);
		list_del_init(&t->file_node);
		f->count--;
		p2p_dax_xfer_free(dma, t);
	} else {
		rc = left < 0 ? -EINTR : -ETIMEDOUT;
	}
	if (dma->gone)
		rc = -ENODEV;
	mutex_unlock(&dma->lock);

	if (copy_to_user(arg, &w, min(usize, sizeof(w))))
		return -EFAULT;
	return rc;
}

static long p2p_dax_dma_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct p2p_dax_file *f = file->private_data;
	void __user *uarg = (void __user *)arg;
	size_t usize = _IOC_SIZE(cmd);

	if (READ_ONCE(f->dma->gone))
		return -ENODEV;		/* whatever the ioctl: the board is gone */
	if (_IOC_TYPE(cmd) != P2P_DAX_IOC_MAGIC)
		return -ENOTTY;
	/* Any struct size from the first version's on: see p2p_dax_ioctl.h. */
	switch (_IOC_NR(cmd)) {
	case _IOC_NR(P2P_DAX_IOC_INFO):
		if (_IOC_DIR(cmd) != _IOC_READ || usize < P2P_DAX_INFO_SIZE_VER1)
			return -ENOTTY;
		return p2p_dax_ioc_info(f, uarg, usize);
	case _IOC_NR(P2P_DAX_IOC_SUBMIT):
		if (_IOC_DIR(cmd) != (_IOC_READ | _IOC_WRITE) ||
		    usize < P2P_DAX_DMA_SUBMIT_SIZE_VER1)
			return -ENOTTY;
		return p2p_dax_ioc_submit(f, uarg, usize);
	case _IOC_NR(P2P_DAX_IOC_WAIT):
		if (_IOC_DIR(cmd) != (_IOC_READ | _IOC_WRITE) ||
		    usize < P2P_DAX_DMA_WAIT_SIZE_VER1)
			return -ENOTTY;
		return p2p_dax_ioc_wait(f, uarg, usize);
	case _IOC_NR(P2P_DAX_IOC_CANCEL):
		if (_IOC_DIR(cmd) != _IOC_WRITE || usize < P2P_DAX_DMA_CANCEL_SIZE_VER1)
			return -ENOTTY;
		return p2p_dax_ioc_cancel(f, uarg, usize);
	}
	return -ENOTTY;
}

static int p2p_dax_dma_open(struct inode *inode, struct file *file)
{
	/* misc_open() holds misc_mtx here, which misc_deregister() takes too. */
	struct p2p_dax_dma *dma = container_of(file->private_data, struct p2p_dax_dma, misc);
	struct p2p_dax_file *f = kzalloc(sizeof(*f), GFP_KERNEL);

	if (!f)
		return -ENOMEM;
	f->dma = dma;
	INIT_LIST_HEAD(&f->xfers);
	f->next_id = 1;
	kref_get(&dma->ref);
	file->private_data = f;
	return nonseekable_open(inode, file);
}

/*
 * Closing cancels the file's transfers: what is not in the engine yet is
 * dropped and unpinned now, the rest when its descriptors end.
 */
static int p2p_dax_dma_release(struct inode *inode, struct file *file)
{
	struct p2p_dax_file *f = file->private_data;
	struct p2p_dax_dma *dma = f->dma;
	struct p2p_dax_xfer *t, *n;

	mutex_lock(&dma->lock);
	list_for_each_entry_safe(t, n, &f->xfers, file_node) {
		list_del_init(&t->file_node);
		t->file = NULL;
		if (t->done)
			p2p_dax_xfer_free(dma, t);
		else
			p2p_dax_xfer_cancel(dma, t);	/* may free t */
	}
	mutex_unlock(&dma->lock);
	kfree(f);
	kref_put(&dma->ref, p2p_dax_dma_free);
	return 0;
}

static const struct file_operations p2p_dax_dma_fops = {
	.owner = THIS_MODULE,
	.open = p2p_dax_dma_open,
	.release = p2p_dax_dma_release,
	.unlocked_ioctl = p2p_dax_dma_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

/*
 * Unbind: no new files, no new submissions; the engine is aborted, so that
 * nothing it holds moves any more (a hung transfer included), then bus
 * mastering goes off and the buffers are unpinned.
 */
static void p2p_dax_dma_unbind(void *data)
{
	struct p2p_dax_dma *dma = data;
	struct pci_dev *pdev = dma->pdev;
	struct p2p_dax_xfer *t, *n;

	debugfs_remove(dma->debugfs);	/* waits for writers of fault_bus */

	if (dma->registered)
		misc_deregister(&dma->misc);
	mutex_lock(&dma->lock);
	dma->gone = true;
	list_for_each_entry_safe(t, n, &dma->active, active_node) {
		list_del_init(&t->queue_node);
		if (t->status == P2P_DAX_DMA_STATUS_OK)
			t->status = P2P_DAX_DMA_STATUS_GONE;
	}
	mutex_unlock(&dma->lock);
	cancel_delayed_work_sync(&dma->watchdog);

	if (dma->engine == P2P_DAX_ENGINE_READY) {
		u32 inflight;

		mutex_lock(&dma->lock);
		if (dma->hw_next != dma->hw_done)
			p2p_dax_dma_abort(dma);
		inflight = dma->hw_next - dma->hw_done;
		mutex_unlock(&dma->lock);
		if (inflight)
			dev_warn(&pdev->dev, "%u DMA descriptors did not end within %d ms of an "
				 "abort; bus mastering is off now, reset the device (sysfs reset) "
				 "before binding it again\n", inflight, P2P_DAX_DMA_STOP_MS);
		pci_clear_master(pdev);
		free_irq(dma->irq, dma);
		pci_free_irq_vectors(pdev);
	}

	mutex_lock(&dma->lock);
	list_for_each_entry_safe(t, n, &dma->active, active_node) {
		if (t->status == P2P_DAX_DMA_STATUS_OK)
			t->status = P2P_DAX_DMA_STATUS_GONE;
		p2p_dax_xfer_end(dma, t);
	}
	memset(dma->slots, 0, sizeof(dma->slots));
	dma->regs = NULL;
	dma->pdev = NULL;
	mutex_unlock(&dma->lock);
	wake_up_all(&dma->wq);
	kref_put(&dma->ref, p2p_dax_dma_free);
}

/* Whether the engine can be used, and its interrupt; the board works without. */
static u32 p2p_dax_dma_setup_engine(struct p2p_dax_dma *dma)
{
	struct pci_dev *pdev = dma->pdev;
	u32 caps = ioread32(dma->regs + P2P_DAX_REG_CAPS);
	u32 base, submitted, done;
	int rc;

	if (!(caps & P2P_DAX_CAPS_DMA_MASK))
		return P2P_DAX_ENGINE_ABSENT;
	base = ioread32(dma->regs + P2P_DAX_REG_DMA_BASE);
	if (base != P2P_DAX_REG_DMA_LOCAL) {
		dev_warn(&pdev->dev, "DMA engine at BAR0 %#x, where this driver expects %#x: "
			 "not used\n", base, P2P_DAX_REG_DMA_LOCAL);
		return P2P_DAX_ENGINE_UNUSABLE;
	}
	if (!(caps & P2P_DAX_CAPS_MSIX_MASK)) {
		dev_warn(&pdev->dev, "the gateware has a DMA engine but no MSI-X: not used\n");
		return P2P_DAX_ENGINE_UNUSABLE;
	}
	submitted = ioread32(dma->regs + P2P_DAX_REG_DMA_SUBMITTED);
	done = ioread32(dma->regs + P2P_DAX_REG_DMA_DONE);
	if (submitted != done) {
		/*
		 * Descriptors of an earlier binding (or of a kernel before a kexec)
		 * would run once bus mastering is on: end them unmoved.
		 */
		dev_warn(&pdev->dev, "the DMA engine holds %u descriptors from before: "
			 "aborting them\n", submitted - done);
		iowrite32(1, dma->regs + P2P_DAX_REG_DMA_ABORT);
		msleep(10);
		done = ioread32(dma->regs + P2P_DAX_REG_DMA_DONE);
		if (submitted != done) {
			dev_warn(&pdev->dev, "DMA engine not used (DMA_SUBMITTED %#x, DMA_DONE "
				 "%#x); reset the device (sysfs reset) and bind again\n",
				 submitted, done);
			return P2P_DAX_ENGINE_UNUSABLE;
		}
	}
	rc = dma_set_mask_and_coherent(&pdev->dev, DMA_BIT_MASK(64));
	if (rc) {
		dev_warn(&pdev->dev, "no 64-bit DMA mask (%d): DMA engine not used\n", rc);
		return P2P_DAX_ENGINE_UNUSABLE;
	}
	dma_set_max_seg_size(&pdev->dev, P2P_DAX_DMA_MAX_LENGTH);
	rc = pci_alloc_irq_vectors(pdev, 1, 1, PCI_IRQ_MSIX);
	if (rc < 0) {
		dev_warn(&pdev->dev, "no MSI-X vector (%d): DMA engine not used\n", rc);
		return P2P_DAX_ENGINE_UNUSABLE;
	}
	dma->irq = pci_irq_vector(pdev, P2P_DAX_DMA_VECTOR);
	rc = request_threaded_irq(dma->irq, NULL, p2p_dax_dma_irq, IRQF_ONESHOT, dma->name, dma);
	if (rc) {
		dev_warn(&pdev->dev, "requesting irq %d failed (%d): DMA engine not used\n",
			 dma->irq, rc);
		pci_free_irq_vectors(pdev);
		return P2P_DAX_ENGINE_UNUSABLE;
	}
	dma->hw_next = dma->hw_done = done;
	pci_set_master(pdev);
	return P2P_DAX_ENGINE_READY;
}

/* The character device, on every device (INFO says what it can do). */
static struct dentry *p2p_dax_debugfs_root;

/*
 * Fault injection for tests of the IOMMU (root only, in debugfs): the next
 * descriptor the driver queues goes to this bus address instead of its
 * buffer's, as a hung or corrupt descriptor would. Only while an IOMMU
 * translates the board's DMA: there an address the driver did not map must
 * fault; without one it would reach whatever memory is there.
 */
static int p2p_dax_fault_bus_set(void *data, u64 val)
{
	struct p2p_dax_dma *dma = data;
	struct iommu_domain *domain;
	int rc = 0;

	mutex_lock(&dma->lock);
	if (dma->gone) {
		rc = -ENODEV;
	} else if (val) {
		domain = iommu_get_domain_for_dev(&dma->pdev->dev);
		if (!domain || domain->type == IOMMU_DOMAIN_IDENTITY) {
			dev_warn(&dma->pdev->dev, "fault_bus: no IOMMU translates this device's "
				 "DMA, so the address would reach memory; boot with the IOMMU on "
				 "(intel_iommu=on iommu.passthrough=0)\n");
			rc = -EPERM;
		}
	}
	if (!rc)
		dma->fault_bus = val;
	mutex_unlock(&dma->lock);
	return rc;
}

static int p2p_dax_fault_bus_get(void *data, u64 *val)
{
	struct p2p_dax_dma *dma = data;

	mutex_lock(&dma->lock);
	*val = dma->fault_bus;
	mutex_unlock(&dma->lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(p2p_dax_fault_bus_fops, p2p_dax_fault_bus_get,
			 p2p_dax_fault_bus_set, "0x%llx\n");

static int p2p_dax_dma_probe(struct p2p_dax *p2p)
{
	struct device *dev = &p2p->pdev->dev;
	struct p2p_dax_dma *dma;
	int rc;

	dma = kzalloc(sizeof(*dma), GFP_KERNEL);
	if (!dma)
		return -ENOMEM;
	kref_init(&dma->ref);
	mutex_init(&dma->lock);
	init_waitqueue_head(&dma->wq);
	INIT_LIST_HEAD(&dma->queue);
	INIT_LIST_HEAD(&dma->active);
	INIT_DELAYED_WORK(&dma->watchdog, p2p_dax_dma_watchdog);
	snprintf(dma->name, sizeof(dma->name), "p2p-dax%d", p2p->id);
	dma->pdev = p2p->pdev;
	dma->regs = p2p->regs;
	dma->version = p2p->version;
	dma->bar_size = pci_resource_len(p2p->pdev, p2p->bar);
	dma->mem_size = p2p->regs ? p2p->mem_size : dma->bar_size;
	/*
	 * Users reach the dax part only (the BAR's start): the p2pmem part
	 * belongs to the kernel's P2PDMA users and p2pmem/allocate mappings.
	 * Within the memory; DMA_LOCAL is 32 bits wide.
	 */
	dma->dma_window = min3((u64)p2p->dax_size, dma->mem_size, 1ULL << 32);
	dma->max_xfers = max_transfers;
	dma->max_pinned = max_pinned;
	dma->engine = p2p->regs ? p2p_dax_dma_setup_engine(dma) : P2P_DAX_ENGINE_NONE;
	p2p->dma = dma;
	rc = devm_add_action_or_reset(dev, p2p_dax_dma_unbind, dma);
	if (rc)
		return rc;

	dma->misc.minor = MISC_DYNAMIC_MINOR;
	dma->misc.name = dma->name;
	dma->misc.fops = &p2p_dax_dma_fops;
	dma->misc.parent = dev;
	dma->misc.mode = 0600;
	rc = misc_register(&dma->misc);
	if (rc) {
		dev_err(dev, "registering /dev/%s failed: %d\n", dma->name, rc);
		return rc;
	}
	dma->registered = true;
	if (dma->engine == P2P_DAX_ENGINE_READY) {
		dma->debugfs = debugfs_create_dir(dma->name, p2p_dax_debugfs_root);
		debugfs_create_file_unsafe("fault_bus", 0600, dma->debugfs, dma,
					   &p2p_dax_fault_bus_fops);
	}
	return 0;
}

static void p2p_dax_free_id(void *data)
{
	ida_free(&p2p_dax_ida, (int)(long)data);
}

/*
 * Everything is device-managed, released in reverse order when the device
 * is unbound: p2pmem, the dax device, the region id, BAR0, the enable.
 */
static int p2p_dax_probe(struct pci_dev *pdev, const struct pci_device_id *ent)
{
	bool board = pci_match_id(p2p_dax_ids, pdev) != NULL;
	struct device *dev = &pdev->dev;
	struct p2p_dax *p2p;
	int rc;

	if (!board && memory_bar < 0) {
		dev_err(dev, "%04x:%04x is not a p2p-dax board; to use one of its BARs as "
			"memory, load p2p_dax with memory_bar=N\n", pdev->vendor, pdev->device);
		return -ENODEV;
	}
	p2p = devm_kzalloc(dev, sizeof(*p2p), GFP_KERNEL);
	if (!p2p)
		return -ENOMEM;
	p2p->pdev = pdev;
	p2p->bar = board ? P2P_DAX_BOARD_MEM_BAR : memory_bar;
	pci_set_drvdata(pdev, p2p);

	rc = pcim_enable_device(pdev);
	if (rc) {
		dev_err(dev, "enabling the device failed: %d\n", rc);
		return rc;
	}
	if (board) {
		p2p->regs = p2p_dax_iomap_bar(pdev, P2P_DAX_REG_BAR, KBUILD_MODNAME);
		if (IS_ERR(p2p->regs)) {
			rc = PTR_ERR(p2p->regs);
			dev_err(dev, "BAR0 cannot be mapped (in use by another driver?): %d\n", rc);
			return rc;
		}
		rc = p2p_dax_check_board(p2p);
		if (rc)
			return rc;
	}
	rc = p2p_dax_check_bar(p2p);
	if (rc)
		return rc;

	rc = ida_alloc(&p2p_dax_ida, GFP_KERNEL);
	if (rc < 0)
		return rc;
	p2p->id = rc;
	rc = devm_add_action_or_reset(dev, p2p_dax_free_id, (void *)(long)p2p->id);
	if (rc)
		return rc;

	rc = p2p_dax_reserve_memtype(p2p);
	if (rc)
		return rc;
	if (p2p->dax_size) {
		rc = p2p_dax_add_dax(p2p);
		if (rc)
			return rc;
	}
	if (p2p->p2p_size) {
		rc = p2p_dax_add_p2pdma(p2p);
		if (rc)
			return rc;
	}
	/* Last: its unbind runs first and unpins pages of the dax device too. */
	rc = p2p_dax_dma_probe(p2p);
	if (rc)
		return rc;
	dev_info(dev, "%s BAR%d: %s%s%s%s (%llu MiB), /dev/%s (DMA engine %s)\n",
		 board ? "board" : "memory-only", p2p->bar,
		 p2p->dax_size ? "/dev/" : "", p2p->dax_name,
		 p2p->dax_size && p2p->p2p_size ? " + " : "",
		 p2p->p2p_size ? "p2pmem" : "",
		 (u64)pci_resource_len(pdev, p2p->bar) >> 20,
		 p2p->dma->name, p2p_dax_engine_names[p2p->dma->engine]);
	return 0;
}

/* sysfs: /sys/bus/pci/devices/<address>/p2p_dax/ */
static struct p2p_dax *p2p_dax_from_dev(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t mode_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", p2p_dax_mode_names[p2p_dax_mode]);
}
static DEVICE_ATTR_RO(mode);

static ssize_t kind_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", p2p_dax_from_dev(dev)->regs ? "board" : "memory-only");
}
static DEVICE_ATTR_RO(kind);

static ssize_t bar_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", p2p_dax_from_dev(dev)->bar);
}
static DEVICE_ATTR_RO(bar);

static ssize_t bar_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct p2p_dax *p2p = p2p_dax_from_dev(dev);

	return sysfs_emit(buf, "%llu\n", (u64)pci_resource_len(p2p->pdev, p2p->bar));
}
static DEVICE_ATTR_RO(bar_size);

static ssize_t dax_device_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", p2p_dax_from_dev(dev)->dax_name);
}
static DEVICE_ATTR_RO(dax_device);

static ssize_t dax_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", (u64)p2p_dax_from_dev(dev)->dax_size);
}
static DEVICE_ATTR_RO(dax_size);

static ssize_t p2pmem_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", (u64)p2p_dax_from_dev(dev)->p2p_size);
}
static DEVICE_ATTR_RO(p2pmem_size);

static ssize_t gateware_version_show(struct device *dev, struct device_attribute *attr,
				     char *buf)
{
	u32 v = p2p_dax_from_dev(dev)->version;

	return sysfs_emit(buf, "%u.%u.%u\n",
			  (v & P2P_DAX_VERSION_MAJOR_MASK) >> P2P_DAX_VERSION_MAJOR_SHIFT,
			  (v & P2P_DAX_VERSION_MINOR_MASK) >> P2P_DAX_VERSION_MINOR_SHIFT,
			  (v & P2P_DAX_VERSION_PATCH_MASK) >> P2P_DAX_VERSION_PATCH_SHIFT);
}
static DEVICE_ATTR_RO(gateware_version);

/* Boards: bytes of memory behind BAR2 (MEM_SIZE); only those are registered. */
static ssize_t mem_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", p2p_dax_from_dev(dev)->mem_size);
}
static DEVICE_ATTR_RO(mem_size);

/* The DMA engine's character device: /dev/<dma_device>. */
static ssize_t dma_device_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", p2p_dax_from_dev(dev)->dma->name);
}
static DEVICE_ATTR_RO(dma_device);

/* none (memory-only), absent, unusable (see dmesg) or ready. */
static ssize_t dma_engine_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%s\n", p2p_dax_engine_names[p2p_dax_from_dev(dev)->dma->engine]);
}
static DEVICE_ATTR_RO(dma_engine);

static struct attribute *p2p_dax_attrs[] = {
	&dev_attr_mode.attr,
	&dev_attr_kind.attr,
	&dev_attr_bar.attr,
	&dev_attr_bar_size.attr,
	&dev_attr_dax_device.attr,
	&dev_attr_dax_size.attr,
	&dev_attr_p2pmem_size.attr,
	&dev_attr_gateware_version.attr,
	&dev_attr_mem_size.attr,
	&dev_attr_dma_device.attr,
	&dev_attr_dma_engine.attr,
	NULL
};

static umode_t p2p_dax_attr_visible(struct kobject *kobj, struct attribute *attr, int n)
{
	struct p2p_dax *p2p = p2p_dax_from_dev(kobj_to_dev(kobj));

	if ((attr == &dev_attr_dax_device.attr || attr == &dev_attr_dax_size.attr) &&
	    !p2p->dax_size)
		return 0;
	if (attr == &dev_attr_p2pmem_size.attr && !p2p->p2p_size)
		return 0;
	if ((attr == &dev_attr_gateware_version.attr || attr == &dev_attr_mem_size.attr) &&
	    !p2p->regs)
		return 0;
	return attr->mode;
}

static const struct attribute_group p2p_dax_group = {
	.name = "p2p_dax",
	.attrs = p2p_dax_attrs,
	.is_visible = p2p_dax_attr_visible,
};
__ATTRIBUTE_GROUPS(p2p_dax);

/*
 * Reboot, power-off and kexec do not unbind: stop the engine's bus
 * mastering so that no descriptor left in it writes into the next kernel's
 * memory. A later probe finds the descriptors and refuses the engine until
 * the device is reset.
 */
static void p2p_dax_shutdown(struct pci_dev *pdev)
{
	struct p2p_dax *p2p = pci_get_drvdata(pdev);

	/* Nothing of this kernel's moves after a kexec or a reboot. */
	if (p2p && p2p->dma && p2p->dma->engine == P2P_DAX_ENGINE_READY) {
		iowrite32(1, p2p->regs + P2P_DAX_REG_DMA_ABORT);
		pci_clear_master(pdev);
	}
}

static struct pci_driver p2p_dax_driver = {
	.name = KBUILD_MODNAME,
	.id_table = p2p_dax_ids,
	.probe = p2p_dax_probe,
	.shutdown = p2p_dax_shutdown,
	.dev_groups = p2p_dax_groups,
};

static int __init p2p_dax_check_params(void)
{
	int m = sysfs_match_string(p2p_dax_mode_names, mode);

	if (m < 0) {
		pr_err("p2p_dax: mode=%s: use dax, p2pdma or both\n", mode);
		return -EINVAL;
	}
	p2p_dax_mode = m;
	if (p2p_dax_mode != P2P_DAX_MODE_DAX && !IS_ENABLED(CONFIG_PCI_P2PDMA)) {
		pr_err("p2p_dax: mode=%s: this kernel is built without CONFIG_PCI_P2PDMA; "
		       "use mode=dax\n", mode);
		return -EINVAL;
	}
	if (p2pdma_size && (p2p_dax_mode != P2P_DAX_MODE_BOTH ||
			    !IS_ALIGNED(p2pdma_size, P2P_DAX_MIN_ALIGN))) {
		pr_err("p2p_dax: p2pdma_size=%lu: only with mode=both, and a multiple of "
		       "2 MiB (2097152)\n", p2pdma_size);
		return -EINVAL;
	}
	if (dax_align != PAGE_SIZE && dax_align != SZ_2M) {
		pr_err("p2p_dax: align=%u: use %lu or %d\n", dax_align, PAGE_SIZE, SZ_2M);
		return -EINVAL;
	}
	if (!max_transfers || max_pinned < PAGE_SIZE) {
		pr_err("p2p_dax: max_transfers=%u max_pinned=%lu: the DMA node needs at "
		       "least one transfer and one page (%lu bytes)\n", max_transfers,
		       max_pinned, PAGE_SIZE);
		return -EINVAL;
	}
	if (dma_deadline_ms < 100 || dma_deadline_ms > 3600000) {
		pr_err("p2p_dax: dma_deadline_ms=%u: use 100 to 3600000\n", dma_deadline_ms);
		return -EINVAL;
	}
	if (memory_bar < -1 || memory_bar >= PCI_STD_NUM_BARS) {
		pr_err("p2p_dax: memory_bar=%d: use a BAR number, 0 to 5 (or -1: off)\n",
		       memory_bar);
		return -EINVAL;
	}
	return 0;
}

static int __init p2p_dax_init(void)
{
	int rc = p2p_dax_check_params();

	if (rc)
		return rc;
	p2p_dax_debugfs_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
	rc = auxiliary_driver_register(&p2p_dax_region_driver);
	if (rc)
		goto out;
	rc = pci_register_driver(&p2p_dax_driver);
	if (!rc)
		return 0;
	auxiliary_driver_unregister(&p2p_dax_region_driver);
out:
	debugfs_remove(p2p_dax_debugfs_root);
	return rc;
}

static void __exit p2p_dax_exit(void)
{
	pci_unregister_driver(&p2p_dax_driver);
	auxiliary_driver_unregister(&p2p_dax_region_driver);
	debugfs_remove(p2p_dax_debugfs_root);
}

module_init(p2p_dax_init);
module_exit(p2p_dax_exit);

MODULE_DESCRIPTION("PCIe memory BAR as device-dax and P2PDMA memory (p2p-dax boards)");
MODULE_LICENSE("GPL");
MODULE_VERSION(P2P_DAX_PROJECT_VERSION);
