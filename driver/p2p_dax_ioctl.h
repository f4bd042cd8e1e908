/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note OR MIT */
/*
 * p2p_dax: the user-space API of a board's DMA engine, /dev/p2p-dax<N>
 * (N is the dax region id: /dev/dax<N>.0 is the same board's memory; sysfs
 * /sys/bus/pci/devices/<address>/p2p_dax/dma_device names the node).
 *
 * Every board with p2p_dax bound has the node, memory-only devices (no
 * register BAR) too; INFO says whether a DMA engine can be used. A transfer
 * moves bytes between a buffer in the caller's address space (RAM, or a
 * peer's BAR mapped from its /dev/daxM.0) and the board's BAR2 memory: the
 * driver pins and maps the buffer, so no bus or physical address ever comes
 * from user space.
 *
 * Layout rules, so that the API can grow: only __u32 and __u64 members,
 * explicit padding, no pointers (addresses are __u64), same layout on 32-
 * and 64-bit. The struct size is part of each ioctl number: a later version
 * appends members and the driver takes any size from the first version's
 * on, copying what both sides know. Bytes the driver does not know must be
 * zero (else E2BIG); reserved members must be zero (else EINVAL).
 *
 * Errors every ioctl can return:
 *   ENOTTY      not an ioctl of this device
 *   ENODEV      the board was unbound or removed: any ioctl, known or not,
 *               fails so from then on; close the file
 *   EFAULT      the argument pointer is bad
 *   E2BIG       the struct is larger than the driver knows and the extra
 *               bytes are not zero
 */
#ifndef _UAPI_P2P_DAX_IOCTL_H
#define _UAPI_P2P_DAX_IOCTL_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define P2P_DAX_API_VERSION		2	/* 2: CANCEL, device-wide limits in INFO, ABORTED */
#define P2P_DAX_IOC_MAGIC		0xDA

/* p2p_dax_info.engine */
#define P2P_DAX_ENGINE_NONE		0	/* memory-only device: no registers */
#define P2P_DAX_ENGINE_ABSENT		1	/* board without a DMA engine (CAPS.dma 0) */
#define P2P_DAX_ENGINE_UNUSABLE		2	/* present, but not usable: see dmesg */
#define P2P_DAX_ENGINE_READY		3

/*
 * P2P_DAX_IOC_INFO: the device and its engine. Never fails on a bound device.
 */
struct p2p_dax_info {
	__u32 api_version;	/* P2P_DAX_API_VERSION of the driver */
	__u32 engine;		/* P2P_DAX_ENGINE_* */
	__u64 mem_size;		/* bytes of memory behind the memory BAR */
	__u64 bar_size;		/* bytes of the memory BAR */
	__u64 dma_window;	/* transfers must lie in BAR2 offsets [0, dma_window):
				 * the dax part of BAR2, within the memory; never
				 * the p2pmem part (0 with mode=p2pdma) */
	__u64 max_transfer;	/* largest SUBMIT length */
	__u64 max_segment;	/* largest descriptor; longer transfers are split */
	__u32 queue_depth;	/* descriptors the driver keeps queued in the engine */
	__u32 max_transfers;	/* transfers one open file may have not yet waited for */
	__u32 transfers;	/* this open file's transfers not yet waited for */
	__u32 gateware_version;	/* VERSION register (0 without registers) */
	__u64 descriptors_submitted;	/* since the driver bound the board */
	__u64 descriptors_done;		/* ended, whatever their status */
	__u64 descriptors_failed;	/* ended with a status other than OK */
	__u64 bytes_done;		/* moved by descriptors that ended OK */
	__u32 hw_state;		/* DMA_STATE register (busy, bus_master) */
	__u32 hw_overflow;	/* DMA_ERR_OVERFLOW register */
	/* Since API version 2 (0 before): limits of the whole device. */
	__u32 device_max_transfers;	/* transfers of all open files together */
	__u32 device_transfers;		/* ... now (ended ones not yet waited for too) */
	__u64 max_pinned;	/* bytes of buffers pinned for transfers, all files */
	__u64 pinned;		/* ... now */
	__u64 reserved[1];
};

/* p2p_dax_dma_submit.direction */
#define P2P_DAX_DMA_TO_BAR		1	/* buffer -> BAR2: the engine reads the buffer */
#define P2P_DAX_DMA_FROM_BAR		2	/* BAR2 -> buffer: the engine writes the buffer */

/*
 * P2P_DAX_IOC_SUBMIT: queue a transfer; returns at once, WAIT for its end.
 * Any alignment of addr, offset and length works. Checked in this order:
 *   EINVAL      direction unknown, flags or reserved not zero, length 0 or
 *               over max_transfer (INFO; 256 MiB), addr + length wraps
 *   ERANGE      offset + length beyond dma_window: beyond the memory, or
 *               in the p2pmem part of BAR2 (mode=both or p2pdma), which only
 *               the kernel's P2PDMA users and p2pmem/allocate mappings reach
 *   EOPNOTSUPP  no usable DMA engine (memory-only device, or see INFO.engine)
 *   EFAULT      the buffer is not mapped (or not writable for FROM_BAR)
 *   EAGAIN      max_transfers of this file not yet waited for, or the
 *               device's limits (device_max_transfers, max_pinned) reached:
 *               WAIT for a transfer first
 *   ENOMEM      the buffer's pages would exceed the caller's RLIMIT_MEMLOCK
 *               (pinned pages are charged to it, as mlock; CAP_IPC_LOCK
 *               lifts the limit), or the kernel is out of memory
 *   EXDEV       part of the buffer is another PCI device's BAR (or this
 *               board's) mapped without P2PDMA, e.g. a peer's /dev/daxN.M:
 *               the kernel would map those pages as if they were RAM, past
 *               its P2P checks. Map the peer's p2pmem (sysfs
 *               p2pmem/allocate) as the buffer instead
 *   EREMOTEIO   the buffer is a peer's P2PDMA memory that the kernel's P2P
 *               rules do not let this board reach: no common switch and a
 *               host bridge not on the kernel's list, ACS sending peer
 *               traffic up to the root, or a kernel before 6.2, whose DMA
 *               API cannot map P2PDMA pages
 *   EIO         the kernel refused to map the buffer for the device (an
 *               IOMMU refusal: see dmesg)
 */
struct p2p_dax_dma_submit {
	__u64 addr;		/* in: the buffer's address in the caller's memory */
	__u64 length;		/* in: bytes, 1 to max_transfer */
	__u64 offset;		/* in: byte offset in BAR2 */
	__u32 direction;	/* in: P2P_DAX_DMA_TO_BAR or P2P_DAX_DMA_FROM_BAR */
	__u32 flags;		/* in: 0 */
	__u64 id;		/* out: the transfer, for WAIT; never 0 */
	__u64 reserved[3];	/* in: 0 */
};

/*
 * p2p_dax_dma_wait.status: how the transfer ended. Values below 16 are the
 * engine's DMA_RESULT.status of the first descriptor that failed (the
 * register map's DmaStatus); ABORTED also when the driver aborted the engine
 * because none of its descriptors ended for dma_deadline_ms.
 */
/* BEGIN DmaStatus: generated by `python -m hw.spec.regmap --update-uapi` */
#define P2P_DAX_DMA_STATUS_OK                   0	/* all its data moved */
#define P2P_DAX_DMA_STATUS_UNSUPPORTED_REQUEST  1	/* the target answered UR */
#define P2P_DAX_DMA_STATUS_COMPLETER_ABORT      2	/* the target answered CA */
#define P2P_DAX_DMA_STATUS_TIMEOUT              3	/* no completion within the engine's completion timeout */
#define P2P_DAX_DMA_STATUS_POISONED             4	/* a completion carried poisoned or corrupt data */
#define P2P_DAX_DMA_STATUS_BAD_COMPLETION       5	/* a completion did not match its request */
#define P2P_DAX_DMA_STATUS_BAD_DESCRIPTOR       6	/* refused: length 0 or over DMA_MAX_LENGTH, direction unknown, or BAR2 range beyond MEM_SIZE */
#define P2P_DAX_DMA_STATUS_ABORTED              7	/* ended by DMA_ABORT: none, part or all of its data moved */
/* END DmaStatus */
#define P2P_DAX_DMA_STATUS_BAD_RESULT		16	/* result slot not what the driver expected */
#define P2P_DAX_DMA_STATUS_GONE			17	/* board unbound before the end */
#define P2P_DAX_DMA_STATUS_CANCELLED		18	/* CANCEL, or its file closed, first */
#define P2P_DAX_DMA_STATUS_RUNNING		0xffffffff	/* not ended yet (done 0) */

#define P2P_DAX_WAIT_FOREVER		0xffffffffu	/* timeout_ms: no limit */

/*
 * P2P_DAX_IOC_WAIT: wait for a transfer's end (the engine's MSI-X interrupt).
 * Once it has ended (done 1) the id is forgotten, whatever the return value.
 *   0           ended, every byte moved (status OK)
 *   EIO         ended with a device error: status and error_offset say which
 *   ECANCELED   ended after CANCEL: bytes say how much had moved
 *   ETIMEDOUT   done 1: the device's completion timeout (status TIMEOUT),
 *               or no descriptor of the engine ended for the module's
 *               dma_deadline_ms and the driver aborted it (status ABORTED);
 *               done 0: still running after timeout_ms (wait again later;
 *               the buffer stays pinned until the transfer ends)
 *   EINTR       a signal came first; still running
 *   ENOENT      no such transfer in this open file (never, or already waited)
 *   EBUSY       another thread is waiting for it
 *   EINVAL      flags or reserved not zero
 *   ENODEV      the board went away (status GONE if the transfer had not ended)
 * The struct is written back on 0, EIO, ETIMEDOUT, EINTR and (for a known
 * id) ENODEV.
 */
struct p2p_dax_dma_wait {
	__u64 id;		/* in: from SUBMIT */
	__u32 timeout_ms;	/* in: 0 do not sleep, P2P_DAX_WAIT_FOREVER no limit */
	__u32 flags;		/* in: 0 */
	__u64 bytes;		/* out: bytes moved by descriptors that ended OK */
	__u64 error_offset;	/* out: status not OK: offset in the transfer of the failed part */
	__u32 status;		/* out: P2P_DAX_DMA_STATUS_* */
	__u32 done;		/* out: 1 ended, 0 still running */
	__u64 reserved[2];	/* in: 0 */
};

/*
 * P2P_DAX_IOC_CANCEL (API version 2): queue no more of a transfer. Parts
 * already in the engine run to their end (each read is bounded by the
 * engine's completion timeout); then the transfer ends with status
 * CANCELLED, and WAIT reports it. Closing the file cancels all its
 * transfers so, and their buffers are unpinned as they end.
 *   0           cancelled: WAIT for its end
 *   EALREADY    nothing left to cancel: it has ended, or all of it is in
 *               the engine; WAIT for it
 *   ENOENT      no such transfer in this open file
 *   EINVAL      flags or reserved not zero
 */
struct p2p_dax_dma_cancel {
	__u64 id;		/* in: from SUBMIT */
	__u32 flags;		/* in: 0 */
	__u32 reserved0;	/* in: 0 */
	__u64 reserved[2];	/* in: 0 */
};

/* The sizes of the first version of each struct: the smallest accepted. */
#define P2P_DAX_INFO_SIZE_VER1		136
#define P2P_DAX_DMA_SUBMIT_SIZE_VER1	64
#define P2P_DAX_DMA_WAIT_SIZE_VER1	56
#define P2P_DAX_DMA_CANCEL_SIZE_VER1	32

#define P2P_DAX_IOC_INFO	_IOR(P2P_DAX_IOC_MAGIC, 0x00, struct p2p_dax_info)
#define P2P_DAX_IOC_SUBMIT	_IOWR(P2P_DAX_IOC_MAGIC, 0x01, struct p2p_dax_dma_submit)
#define P2P_DAX_IOC_WAIT	_IOWR(P2P_DAX_IOC_MAGIC, 0x02, struct p2p_dax_dma_wait)
#define P2P_DAX_IOC_CANCEL	_IOW(P2P_DAX_IOC_MAGIC, 0x03, struct p2p_dax_dma_cancel)

#endif /* _UAPI_P2P_DAX_IOCTL_H */
