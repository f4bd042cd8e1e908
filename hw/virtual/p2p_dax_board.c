/*
 * p2p-dax virtual board: a QEMU PCIe device that is the board to the guest,
 * with the board's RTL running in a cocotb simulation at the other end of a
 * UNIX socket (hw/virtual/cosim.py; the protocol is hw/virtual/protocol.py).
 *
 * To the guest it has the board's identity, all from the register map
 * (p2p_dax_regs.h, made by hw/spec/regmap.py): vendor/device ID, class code,
 * BAR0 (32-bit, registers, MSI-X table and PBA), BAR2 (64-bit prefetchable,
 * its size announced by the simulation), and PCIe and MSI-X capabilities at
 * the offsets the simulation's hard-IP model has them
 * (p2p_dax_bridge.h, made by hw/virtual/protocol.py).
 *
 *  - Every BAR access goes to the simulation; reads wait for the reply.
 *  - Configuration writes (but for the BARs, whose addresses are the
 *    guest's business) are forwarded, so Bus Master Enable, MPS/MRRS, RCB
 *    and the MSI-X enable and mask reach the RTL as on hardware.
 *  - The RTL's own requests arrive as DMA_READ / DMA_WRITE and are carried
 *    out on the device's bus-master address space: guest RAM, another
 *    device's BAR (peer to peer), or the interrupt controller (an MSI-X
 *    message is a memory write, as on the bus).
 *  - A vCPU waiting for a read reply serves the DMA requests that arrive
 *    meanwhile; otherwise the main loop serves them. Both hold the BQL, so
 *    one reader at a time.
 *  - If the simulation goes away (end of file, error, or no reply within
 *    "timeout-ms"), the device says so once and from then on reads return
 *    all ones and writes are dropped, as for a board that fell off the bus.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/range.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "qom/object.h"
#include "sysemu/dma.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "p2p_dax_regs.h"
#include "p2p_dax_bridge.h"

#define TYPE_P2P_DAX_BOARD "p2p-dax-board"
OBJECT_DECLARE_SIMPLE_TYPE(P2PDaxBoard, P2P_DAX_BOARD)

struct P2PDaxBoard {
    PCIDevice parent_obj;
    MemoryRegion bar0;
    MemoryRegion bar2;
    char *socket_path;
    uint64_t bar2_size;         /* 0: as the simulation announces */
    uint32_t timeout_ms;
    int fd;                     /* -1: no simulation (any more) */
    bool waiting;               /* a vCPU waits for a read reply */
    bool warned_nested;
    uint32_t next_id;
    uint8_t data[P2P_DAX_BRIDGE_MAX_DATA];
};

static void board_disconnect(P2PDaxBoard *s, const char *why)
{
    if (s->fd < 0) {
        return;
    }
    error_report("p2p-dax-board: %s; the board is gone: reads return all ones "
                 "from now on (see the simulation's log)", why);
    qemu_set_fd_handler(s->fd, NULL, NULL, NULL);
    close(s->fd);
    s->fd = -1;
}

static int64_t board_deadline(P2PDaxBoard *s)
{
    return qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + s->timeout_ms;
}

/* Read exactly n bytes, waiting at most until deadline (ms, realtime). */
static bool board_recv(P2PDaxBoard *s, void *buf, size_t n, int64_t deadline)
{
    uint8_t *p = buf;

    while (n && s->fd >= 0) {
        struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
        int64_t left = deadline - qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
        ssize_t got;

        if (left <= 0) {
            board_disconnect(s, "the simulation did not answer in time (timeout-ms)");
            return false;
        }
        if (poll(&pfd, 1, MIN(left, 1000)) < 0 && errno != EINTR) {
            board_disconnect(s, "poll on the simulation's socket failed");
            return false;
        }
        got = recv(s->fd, p, n, MSG_DONTWAIT);
        if (got == 0) {
            board_disconnect(s, "the simulation closed the connection (it stopped or crashed)");
            return false;
        }
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            board_disconnect(s, "reading from the simulation failed");
            return false;
        }
        p += got;
        n -= got;
    }
    return s->fd >= 0;
}

/* Send a message; `data`, when not NULL, is its `len` bytes of payload (a
 * read request has a length but no payload). */
static bool board_send(P2PDaxBoard *s, uint32_t type, uint64_t addr, uint32_t arg,
                       uint32_t id, const void *data, uint32_t len)
{
    struct p2p_dax_msg m = {
        .type = cpu_to_le32(type), .length = cpu_to_le32(len),
        .addr = cpu_to_le64(addr), .arg = cpu_to_le32(arg), .id = cpu_to_le32(id),
    };
    uint32_t payload = data ? len : 0;
    struct iovec iov[2] = { { &m, sizeof(m) }, { (void *)data, payload } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = payload ? 2 : 1 };
    size_t left = sizeof(m) + payload;

    if (s->fd < 0) {
        return false;
    }
    /* The simulation always reads, so a blocking send ends. */
    while (left) {
        ssize_t sent = sendmsg(s->fd, &mh, MSG_NOSIGNAL);

        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            board_disconnect(s, "writing to the simulation failed (it stopped or crashed)");
            return false;
        }
        left -= sent;
        while (sent && mh.msg_iovlen) {
            size_t step = MIN((size_t)sent, mh.msg_iov->iov_len);

            mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + step;
            mh.msg_iov->iov_len -= step;
            sent -= step;
            if (!mh.msg_iov->iov_len) {
                mh.msg_iov++;
                mh.msg_iovlen--;
            }
        }
    }
    return true;
}

static bool board_recv_header(P2PDaxBoard *s, struct p2p_dax_msg *m, int64_t deadline)
{
    if (!board_recv(s, m, sizeof(*m), deadline)) {
        return false;
    }
    m->type = le32_to_cpu(m->type);
    m->length = le32_to_cpu(m->length);
    m->addr = le64_to_cpu(m->addr);
    m->arg = le32_to_cpu(m->arg);
    m->id = le32_to_cpu(m->id);
    if (m->length > P2P_DAX_BRIDGE_MAX_DATA) {
        board_disconnect(s, "the simulation sent a message longer than the protocol allows");
        return false;
    }
    return true;
}

static uint32_t board_memtx_status(MemTxResult r)
{
    return r == MEMTX_OK ? P2P_DAX_STATUS_OK :
           r == MEMTX_DECODE_ERROR ? P2P_DAX_STATUS_UNSUPPORTED : P2P_DAX_STATUS_ABORT;
}

/* A request of the RTL's (its header read already): carry it out. */
static void board_serve(P2PDaxBoard *s, struct p2p_dax_msg *m)
{
    PCIDevice *pdev = PCI_DEVICE(s);
    MemTxResult r;

    switch (m->type) {
    case P2P_DAX_MSG_DMA_READ:
        if (m->length == 0 || m->length > P2P_DAX_BRIDGE_MAX_DATA) {
            board_disconnect(s, "the simulation asked for a DMA read of a bad length");
            return;
        }
        r = pci_dma_read(pdev, m->addr, s->data, m->length);
        if (r == MEMTX_OK) {
            board_send(s, P2P_DAX_MSG_DMA_READ_REPLY, 0, P2P_DAX_STATUS_OK, m->id,
                       s->data, m->length);
        } else {
            board_send(s, P2P_DAX_MSG_DMA_READ_REPLY, 0, board_memtx_status(r), m->id,
                       NULL, 0);       /* a failed read carries no data */
        }
        return;
    case P2P_DAX_MSG_DMA_WRITE:
        if (!board_recv(s, s->data, m->length, board_deadline(s))) {
            return;
        }
        /* Posted: a write that goes nowhere is dropped, as on the bus. */
        pci_dma_write(pdev, m->addr, s->data, m->length);
        return;
    default:
        board_disconnect(s, "the simulation sent a message QEMU does not expect");
    }
}

/* The main loop's handler: a request of the RTL's while no vCPU waits. */
static void board_readable(void *opaque)
{
    P2PDaxBoard *s = opaque;
    struct p2p_dax_msg m;
    uint8_t byte;

    /* The main loop saw the socket readable before it took the BQL; a vCPU
     * waiting for a read reply may have taken the message meanwhile. */
    if (s->fd < 0 || recv(s->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0) {
        return;
    }
    if (board_recv_header(s, &m, board_deadline(s))) {
        board_serve(s, &m);
    }
}

static uint64_t board_read(P2PDaxBoard *s, int bar, hwaddr addr, unsigned size)
{
    uint64_t ones = size == 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
    uint64_t value = 0;
    int64_t deadline;
    uint32_t id;

    if (s->fd < 0) {
        return ones;
    }
    if (s->waiting) {
        /* Only a DMA request of the board's own, to its own BAR, gets here. */
        if (!s->warned_nested) {
            error_report("p2p-dax-board: the board's DMA engine read its own BAR%d; the "
                         "virtual board cannot serve that (all ones)", bar);
            s->warned_nested = true;
        }
        return ones;
    }
    id = s->next_id++;
    if (!board_send(s, P2P_DAX_MSG_MMIO_READ, addr, bar, id, NULL, size)) {
        return ones;
    }
    s->waiting = true;
    deadline = board_deadline(s);
    for (;;) {
        struct p2p_dax_msg m;

        if (!board_recv_header(s, &m, deadline)) {
            break;
        }
        if (m.type != P2P_DAX_MSG_MMIO_READ_REPLY) {
            board_serve(s, &m);
            continue;
        }
        if (m.id != id || (m.arg == P2P_DAX_STATUS_OK && m.length != size) ||
            (m.arg != P2P_DAX_STATUS_OK && m.length)) {
            board_disconnect(s, "the simulation answered a read it was not asked");
            break;
        }
        if (m.arg == P2P_DAX_STATUS_OK && board_recv(s, s->data, size, deadline)) {
            memcpy(&value, s->data, size);
            s->waiting = false;
            return le64_to_cpu(value);
        }
        break;          /* failed read (UR/CA from the RTL) or connection lost */
    }
    s->waiting = false;
    return ones;
}

static void board_write(P2PDaxBoard *s, int bar, hwaddr addr, uint64_t value, unsigned size)
{
    uint64_t le = cpu_to_le64(value);

    board_send(s, P2P_DAX_MSG_MMIO_WRITE, addr, bar, 0, &le, size);
}

static uint64_t bar0_read(void *opaque, hwaddr addr, unsigned size)
{
    return board_read(opaque, 0, addr, size);
}

static void bar0_write(void *opaque, hwaddr addr, uint64_t value, unsigned size)
{
    board_write(opaque, 0, addr, value, size);
}

static uint64_t bar2_read(void *opaque, hwaddr addr, unsigned size)
{
    return board_read(opaque, 2, addr, size);
}

static void bar2_write(void *opaque, hwaddr addr, uint64_t value, unsigned size)
{
    board_write(opaque, 2, addr, value, size);
}

#define BOARD_OPS(name) {                                               \
    .read = name##_read,                                                \
    .write = name##_write,                                              \
    .endianness = DEVICE_LITTLE_ENDIAN,                                 \
    .valid = { .min_access_size = 1, .max_access_size = 8 },            \
    .impl = { .min_access_size = 1, .max_access_size = 8 },             \
}
static const MemoryRegionOps bar0_ops = BOARD_OPS(bar0);
static const MemoryRegionOps bar2_ops = BOARD_OPS(bar2);

static void board_config_write(PCIDevice *pdev, uint32_t addr, uint32_t value, int len)
{
    P2PDaxBoard *s = P2P_DAX_BOARD(pdev);
    uint32_t le = cpu_to_le32(value);

    pci_default_write_config(pdev, addr, value, len);
    if (ranges_overlap(addr, len, PCI_BASE_ADDRESS_0, 24) ||
        ranges_overlap(addr, len, PCI_ROM_ADDRESS, 4)) {
        return;         /* BAR addresses are the guest's; the RTL sees offsets */
    }
    board_send(s, P2P_DAX_MSG_CFG_WRITE, addr, 0, 0, &le, len);
}

static bool board_connect(P2PDaxBoard *s, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct p2p_dax_msg hello;

    if (!s->socket_path) {
        error_setg(errp, "p2p-dax-board: give socket=PATH, the simulation's socket "
                   "(make vm BOARD=virtual starts the simulation and passes it)");
        return false;
    }
    if (strlen(s->socket_path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "p2p-dax-board: socket path too long (at most %zu bytes): %s",
                   sizeof(sa.sun_path) - 1, s->socket_path);
        return false;
    }
    strcpy(sa.sun_path, s->socket_path);
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "p2p-dax-board: cannot connect to the simulation at %s "
                         "(start it first: make vm BOARD=virtual does)", s->socket_path);
        if (s->fd >= 0) {
            close(s->fd);
        }
        s->fd = -1;
        return false;
    }
    if (!board_recv_header(s, &hello, board_deadline(s)) || hello.type != P2P_DAX_MSG_HELLO) {
        error_setg(errp, "p2p-dax-board: the simulation at %s did not say hello",
                   s->socket_path);
        return false;
    }
    if (hello.arg != P2P_DAX_BRIDGE_VERSION) {
        error_setg(errp, "p2p-dax-board: the simulation speaks protocol version %u, this "
                   "QEMU %u: rebuild QEMU (python -m vm.qemu_build)", hello.arg,
                   P2P_DAX_BRIDGE_VERSION);
        return false;
    }
    if (s->bar2_size && s->bar2_size != hello.addr) {
        error_setg(errp, "p2p-dax-board: bar2-size 0x%" PRIx64 " but the simulated board's "
                   "BAR2 is 0x%" PRIx64 " bytes: leave bar2-size out", s->bar2_size, hello.addr);
        return false;
    }
    s->bar2_size = hello.addr;
    if (s->bar2_size < P2P_DAX_BAR2_MIN_SIZE || (s->bar2_size & (s->bar2_size - 1))) {
        error_setg(errp, "p2p-dax-board: the simulation's BAR2 size 0x%" PRIx64 " is not a "
                   "power of two of at least 0x%x", s->bar2_size, P2P_DAX_BAR2_MIN_SIZE);
        return false;
    }
    qemu_set_fd_handler(s->fd, board_readable, NULL, s);
    return true;
}

static void board_realize(PCIDevice *pdev, Error **errp)
{
    P2PDaxBoard *s = P2P_DAX_BOARD(pdev);
    uint8_t *msix;

    s->fd = -1;
    if (!board_connect(s, errp)) {
        if (s->fd >= 0) {
            close(s->fd);
            s->fd = -1;
        }
        return;
    }
    memory_region_init_io(&s->bar0, OBJECT(s), &bar0_ops, s, "p2p-dax-bar0",
                          P2P_DAX_BAR0_SIZE);
    memory_region_init_io(&s->bar2, OBJECT(s), &bar2_ops, s, "p2p-dax-bar2",
                          s->bar2_size);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->bar0);
    pci_register_bar(pdev, 2, PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     PCI_BASE_ADDRESS_MEM_PREFETCH, &s->bar2);

    if (pcie_endpoint_cap_init(pdev, P2P_DAX_PCIE_CAP_OFFSET) < 0) {
        error_setg(errp, "p2p-dax-board: no room for the PCIe capability");
        return;
    }
    /* MSI-X: the table and PBA are the RTL's BAR0 registers, so QEMU's own
     * MSI-X emulation (msix_init) is not used; the capability only tells the
     * guest where they are, and the RTL sends its messages as memory writes. */
    if (pci_add_capability(pdev, PCI_CAP_ID_MSIX, P2P_DAX_MSIX_CAP_OFFSET,
                           PCI_CAP_MSIX_SIZEOF, errp) < 0) {
        return;
    }
    msix = pdev->config + P2P_DAX_MSIX_CAP_OFFSET;
    pci_set_word(msix + PCI_MSIX_FLAGS, P2P_DAX_MSIX_VECTORS - 1);
    pci_set_long(msix + PCI_MSIX_TABLE, P2P_DAX_REG_MSIX_VEC0_ADDR_LO);  /* BIR 0 */
    pci_set_long(msix + PCI_MSIX_PBA, P2P_DAX_REG_MSIX_PBA);            /* BIR 0 */
    pci_set_word(pdev->wmask + P2P_DAX_MSIX_CAP_OFFSET + PCI_MSIX_FLAGS,
                 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
}

static void board_exit(PCIDevice *pdev)
{
    P2PDaxBoard *s = P2P_DAX_BOARD(pdev);

    if (s->fd >= 0) {
        qemu_set_fd_handler(s->fd, NULL, NULL, NULL);
        close(s->fd);
        s->fd = -1;
    }
}

static Property board_properties[] = {
    DEFINE_PROP_STRING("socket", P2PDaxBoard, socket_path),
    DEFINE_PROP_UINT64("bar2-size", P2PDaxBoard, bar2_size, 0),
    DEFINE_PROP_UINT32("timeout-ms", P2PDaxBoard, timeout_ms, 60000),
    DEFINE_PROP_END_OF_LIST(),
};

static void board_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = board_realize;
    k->exit = board_exit;
    k->config_write = board_config_write;
    k->vendor_id = P2P_DAX_PCI_VENDOR_ID;
    k->device_id = P2P_DAX_PCI_DEVICE_ID;
    k->class_id = P2P_DAX_PCI_CLASS_CODE >> 8;
    k->subsystem_vendor_id = P2P_DAX_PCI_SUBSYSTEM_VENDOR_ID;  /* as hw/flow/hard_ip.py sets the IPs */
    k->subsystem_id = P2P_DAX_PCI_SUBSYSTEM_ID;
    k->revision = P2P_DAX_PCI_REVISION_ID;
    dc->desc = "p2p-dax board, its RTL in a cocotb simulation";
    device_class_set_props(dc, board_properties);
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
}

static const TypeInfo board_info = {
    .name = TYPE_P2P_DAX_BOARD,
    .parent = TYPE_PCI_DEVICE,
    .instance_size = sizeof(P2PDaxBoard),
    .class_init = board_class_init,
    .interfaces = (InterfaceInfo[]) {
        { INTERFACE_PCIE_DEVICE },
        { }
    },
};

static void board_register_types(void)
{
    type_register_static(&board_info);
}

type_init(board_register_types)
