// SPDX-License-Identifier: GPL-2.0
/*
 * p2p_dax: a PCIe device's memory BAR as a device-dax device (/dev/daxN.M),
 * so that user space maps it and other devices (NVMe, RDMA NICs) DMA straight
 * into it, and, on kernels built with CONFIG_PCI_P2PDMA, as P2PDMA memory.
 *
 * Two kinds of device:
 *  - a p2p-dax board: registers in BAR0 (the map in p2p_dax_regs.h, generated
 *    from hw/regmap.py), memory in BAR2. Bound by its PCI ID.
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
 */
#include <linux/auxiliary_bus.h>
#include <linux/idr.h>
#include <linux/memremap.h>
#include <linux/module.h>
#include <linux/numa.h>
#include <linux/pci-p2pdma.h>
#include <linux/pci.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "p2p_dax_compat.h"
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

static enum p2p_dax_mode p2p_dax_mode;
static DEFINE_IDA(p2p_dax_ida);

struct p2p_dax {
	struct pci_dev *pdev;
	void __iomem *regs;		/* BAR0; NULL in memory-only mode */
	int bar;			/* the memory BAR */
	int id;				/* dax region id: /dev/dax<id>.0 */
	u32 version;			/* gateware VERSION register */
	u64 mem_size;			/* boards: memory behind BAR2 (MEM_SIZE) */
	resource_size_t dax_size;	/* dax part: from the BAR's start */
	resource_size_t p2p_size;	/* p2pdma part: at the BAR's end */
	char dax_name[32];		/* e.g. "dax0.0" */
};

/* The dax region's parent; freed by its release callback. */
struct p2p_dax_region {
	struct auxiliary_device adev;
	struct p2p_dax *p2p;		/* valid while the PCI device is bound */
};

static const struct pci_device_id p2p_dax_ids[] = {
	{ PCI_DEVICE(P2PDAX_PCI_VENDOR_ID, P2PDAX_PCI_DEVICE_ID) },
	{ }
};
MODULE_DEVICE_TABLE(pci, p2p_dax_ids);

static int p2p_dax_is_dax_child(struct device *dev, void *unused)
{
	return strncmp(dev_name(dev), "dax", 3) == 0;
}

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
	struct device *child;

	region = alloc_dax_region(&adev->dev, p2p->id, &range, NUMA_NO_NODE, dax_align,
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
	child = device_find_child(&adev->dev, NULL, p2p_dax_is_dax_child);
	if (child) {
		strscpy(p2p->dax_name, dev_name(child), sizeof(p2p->dax_name));
		put_device(child);
	}
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

static struct auxiliary_driver p2p_dax_region_driver = {
	.name = "dax",
	.probe = p2p_dax_region_probe,
	.remove = p2p_dax_region_remove,
	.id_table = p2p_dax_region_ids,
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

static int p2p_dax_add_dax(struct p2p_dax *p2p)
{
	struct device *dev = &p2p->pdev->dev;
	struct p2p_dax_region *region;
	int rc;

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

/* Registers of a board in BAR0: identity, version, and BAR2's size. */
static int p2p_dax_check_board(struct p2p_dax *p2p)
{
	struct pci_dev *pdev = p2p->pdev;
	u32 id, major;
	u64 bar2_size;

	if (pci_resource_len(pdev, P2P_DAX_REG_BAR) < P2PDAX_BAR0_SIZE) {
		dev_err(&pdev->dev, "BAR0 is %llu bytes; the p2p-dax registers need %u\n",
			(u64)pci_resource_len(pdev, P2P_DAX_REG_BAR), P2PDAX_BAR0_SIZE);
		return -ENODEV;
	}
	id = ioread32(p2p->regs + P2PDAX_REG_ID);
	if (id == 0xffffffff) {
		dev_err(&pdev->dev, "BAR0 reads all ones: the device does not answer "
			"(link down, or no bitstream loaded?)\n");
		return -EIO;
	}
	if (id != P2PDAX_MAGIC) {
		dev_err(&pdev->dev, "ID register reads %#010x, not %#010x: not a p2p-dax "
			"bitstream\n", id, P2PDAX_MAGIC);
		return -ENODEV;
	}
	p2p->version = ioread32(p2p->regs + P2PDAX_REG_VERSION);
	major = (p2p->version & P2PDAX_VERSION_MAJOR_MASK) >> P2PDAX_VERSION_MAJOR_SHIFT;
	if (major != P2PDAX_MAP_VERSION_MAJOR) {
		dev_err(&pdev->dev, "gateware register map version %u.x; this driver "
			"knows %u.x: update the driver or the bitstream\n",
			major, P2PDAX_MAP_VERSION_MAJOR);
		return -ENODEV;
	}
	bar2_size = ioread32(p2p->regs + P2PDAX_REG_BAR2_SIZE_LO) |
		    (u64)ioread32(p2p->regs + P2PDAX_REG_BAR2_SIZE_HI) << 32;
	p2p->mem_size = ioread32(p2p->regs + P2PDAX_REG_MEM_SIZE_LO) |
			(u64)ioread32(p2p->regs + P2PDAX_REG_MEM_SIZE_HI) << 32;
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
				"(%llu bytes): p2pdma_size must be 2 MiB to %llu\n", bar,
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
		rc = pcim_iomap_regions(pdev, BIT(P2P_DAX_REG_BAR), KBUILD_MODNAME);
		if (rc) {
			dev_err(dev, "BAR0 cannot be mapped (in use by another driver?): %d\n", rc);
			return rc;
		}
		p2p->regs = pcim_iomap_table(pdev)[P2P_DAX_REG_BAR];
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
	dev_info(dev, "%s BAR%d: %s%s%s%s (%llu MiB)\n",
		 board ? "board" : "memory-only", p2p->bar,
		 p2p->dax_size ? "/dev/" : "", p2p->dax_name,
		 p2p->dax_size && p2p->p2p_size ? " + " : "",
		 p2p->p2p_size ? "p2pmem" : "",
		 (u64)pci_resource_len(pdev, p2p->bar) >> 20);
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
			  (v & P2PDAX_VERSION_MAJOR_MASK) >> P2PDAX_VERSION_MAJOR_SHIFT,
			  (v & P2PDAX_VERSION_MINOR_MASK) >> P2PDAX_VERSION_MINOR_SHIFT,
			  (v & P2PDAX_VERSION_PATCH_MASK) >> P2PDAX_VERSION_PATCH_SHIFT);
}
static DEVICE_ATTR_RO(gateware_version);

/* Boards: bytes of memory behind BAR2; less than bar_size when BAR2 mirrors it. */
static ssize_t mem_size_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%llu\n", p2p_dax_from_dev(dev)->mem_size);
}
static DEVICE_ATTR_RO(mem_size);

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

static struct pci_driver p2p_dax_driver = {
	.name = KBUILD_MODNAME,
	.id_table = p2p_dax_ids,
	.probe = p2p_dax_probe,
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
	rc = auxiliary_driver_register(&p2p_dax_region_driver);
	if (rc)
		return rc;
	rc = pci_register_driver(&p2p_dax_driver);
	if (rc)
		auxiliary_driver_unregister(&p2p_dax_region_driver);
	return rc;
}

static void __exit p2p_dax_exit(void)
{
	pci_unregister_driver(&p2p_dax_driver);
	auxiliary_driver_unregister(&p2p_dax_region_driver);
}

module_init(p2p_dax_init);
module_exit(p2p_dax_exit);

MODULE_DESCRIPTION("PCIe memory BAR as device-dax and P2PDMA memory (p2p-dax boards)");
MODULE_LICENSE("GPL");
MODULE_VERSION(P2PDAX_PROJECT_VERSION);
