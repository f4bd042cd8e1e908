/*
 * p2p-dax virtual board: a QEMU PCIe device that is the board to the guest.
 *
 * Work in progress (issue 7). What is here: the device's identity as the
 * guest sees it, all from the register map (driver/p2p_dax_regs.h, made by
 * hw/regmap.py): vendor/device ID, class code, BAR0 (32-bit, registers),
 * BAR2 (64-bit prefetchable, size from the "bar2-size" property, which the
 * harness takes from the simulation's EndpointParams), a PCIe capability at
 * 0x70 and an MSI-X capability at 0x60 whose table and PBA are BAR0
 * registers served by the RTL, as on the hard IPs.
 *
 * Not yet: the socket to the simulation. Until it exists every BAR read
 * returns all ones (what a guest sees of a device that does not answer)
 * and writes are dropped.
 */

#include "qemu/osdep.h"
#include "qemu/module.h"
#include "qapi/error.h"
#include "hw/pci/pci.h"
#include "hw/pci/pcie.h"
#include "hw/qdev-properties.h"
#include "qom/object.h"

#include "p2p_dax_regs.h"

#define TYPE_P2P_DAX_BOARD "p2p-dax-board"
OBJECT_DECLARE_SIMPLE_TYPE(P2PDaxBoard, P2P_DAX_BOARD)

/* Capability offsets as cocotbext-pcie's UltraScale+ model lays them out, so
 * that configuration writes forwarded to the simulation land alike. */
#define MSIX_CAP_OFFSET 0x60
#define PCIE_CAP_OFFSET 0x70

struct P2PDaxBoard {
    PCIDevice parent_obj;
    MemoryRegion bar0;
    MemoryRegion bar2;
    uint64_t bar2_size;
};

static uint64_t board_read(void *opaque, hwaddr addr, unsigned size)
{
    return size == 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

static void board_write(void *opaque, hwaddr addr, uint64_t val, unsigned size)
{
}

static const MemoryRegionOps board_ops = {
    .read = board_read,
    .write = board_write,
    .endianness = DEVICE_LITTLE_ENDIAN,
    .valid = { .min_access_size = 1, .max_access_size = 8 },
    .impl = { .min_access_size = 1, .max_access_size = 8 },
};

static void board_realize(PCIDevice *pdev, Error **errp)
{
    P2PDaxBoard *s = P2P_DAX_BOARD(pdev);
    uint8_t *msix;

    if (s->bar2_size < P2PDAX_BAR2_MIN_SIZE || (s->bar2_size & (s->bar2_size - 1))) {
        error_setg(errp, "p2p-dax-board: bar2-size 0x%" PRIx64 " must be a power of two "
                   "of at least 0x%x", s->bar2_size, P2PDAX_BAR2_MIN_SIZE);
        return;
    }
    memory_region_init_io(&s->bar0, OBJECT(s), &board_ops, s, "p2p-dax-bar0",
                          P2PDAX_BAR0_SIZE);
    memory_region_init_io(&s->bar2, OBJECT(s), &board_ops, s, "p2p-dax-bar2",
                          s->bar2_size);
    pci_register_bar(pdev, 0, PCI_BASE_ADDRESS_SPACE_MEMORY, &s->bar0);
    pci_register_bar(pdev, 2, PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_64 |
                     PCI_BASE_ADDRESS_MEM_PREFETCH, &s->bar2);

    if (pcie_endpoint_cap_init(pdev, PCIE_CAP_OFFSET) < 0) {
        error_setg(errp, "p2p-dax-board: no room for the PCIe capability");
        return;
    }
    /* MSI-X: the table and PBA are the RTL's BAR0 registers, so QEMU's own
     * MSI-X emulation (msix_init) is not used; the capability only tells the
     * guest where they are, and the RTL sends its messages as memory writes. */
    if (pci_add_capability(pdev, PCI_CAP_ID_MSIX, MSIX_CAP_OFFSET, PCI_CAP_MSIX_SIZEOF,
                           errp) < 0) {
        return;
    }
    msix = pdev->config + MSIX_CAP_OFFSET;
    pci_set_word(msix + PCI_MSIX_FLAGS, P2PDAX_MSIX_VECTORS - 1);
    pci_set_long(msix + PCI_MSIX_TABLE, P2PDAX_REG_MSIX_VEC0_ADDR_LO);  /* BIR 0 */
    pci_set_long(msix + PCI_MSIX_PBA, P2PDAX_REG_MSIX_PBA);            /* BIR 0 */
    pci_set_word(pdev->wmask + MSIX_CAP_OFFSET + PCI_MSIX_FLAGS,
                 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
}

static void board_exit(PCIDevice *pdev)
{
}

static Property board_properties[] = {
    DEFINE_PROP_UINT64("bar2-size", P2PDaxBoard, bar2_size, P2PDAX_BAR2_MIN_SIZE),
    DEFINE_PROP_END_OF_LIST(),
};

static void board_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    PCIDeviceClass *k = PCI_DEVICE_CLASS(klass);

    k->realize = board_realize;
    k->exit = board_exit;
    k->vendor_id = P2PDAX_PCI_VENDOR_ID;
    k->device_id = P2PDAX_PCI_DEVICE_ID;
    k->class_id = P2PDAX_PCI_CLASS_CODE >> 8;
    k->subsystem_vendor_id = P2PDAX_PCI_VENDOR_ID;    /* as hw/hard_ip.py sets the IPs */
    k->subsystem_id = P2PDAX_PCI_DEVICE_ID;
    k->revision = 0;
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
