"""The one register map of the p2p-dax endpoint.

BAR0 holds 32-bit registers. This module describes them once, in plain
Python (no Amaranth import), so that the gateware's register decoder, the
driver's C header and the host library's constants all come from here.

Every register is 32 bits wide and 4-byte aligned. Accesses of any size
are allowed; bytes of a read-only register ignore writes.
"""

from dataclasses import dataclass
from enum import Enum, IntEnum

from hw.spec import fields as packing


MAGIC = 0x70326478          # "p2dx" in ASCII, little end first: 'x','d','2','p'
VERSION_MAJOR = 0
VERSION_MINOR = 2
VERSION_PATCH = 0

# PCI identity: the one place a lab that needs its own IDs changes them. The
# hard IP's Tcl (hw/flow/hard_ip.py), the driver (through the generated header),
# the virtual board and the tests all take them from here. The driver binds a
# device only when all four IDs match. The device ID is one that no driver
# known to us lists (not Xilinx's XDMA, QDMA, XRT, litepcie, nor mainline's
# tables, nor pci.ids), and outside the pattern of the hard IPs' default IDs
# (family, speed, width: 10ee:7032 is XDMA's and others').
PCI_VENDOR_ID = 0x10EE      # Xilinx, the hard IP's vendor
PCI_DEVICE_ID = 0x1E00      # p2p-dax
PCI_SUBSYSTEM_VENDOR_ID = 0x10EE
PCI_SUBSYSTEM_ID = 0x7032   # "p2", as the register map's magic
PCI_REVISION_ID = 0x00
PCI_CLASS_CODE = 0x058000   # memory controller, other

BAR0_SIZE = 64 * 1024       # registers; 32-bit, non-prefetchable
BAR2_MIN_SIZE = 2 * 1024 * 1024


class Access(Enum):
    RO = "ro"       # read only (writes ignored)
    RW = "rw"       # read/write storage
    WO = "wo"       # write-only strobe bits, read as zero


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    doc: str

    @property
    def mask(self):
        return ((1 << self.width) - 1) << self.lsb


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    access: Access
    doc: str
    fields: tuple = ()
    reset: int = 0
    writable: int = 0xFFFF_FFFF     # RW registers: the bits that store writes

    def field(self, name):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name}")

    @property
    def table(self):
        return {f.name: (f.lsb, f.width) for f in self.fields}

    def pack(self, **values):
        """The register's value with each named field set (the others 0)."""
        return packing.pack(self.table, **values)

    def unpack(self, word):
        """{field name: value} of a value read from the register."""
        return packing.unpack(self.table, word)


# Capability bits (register CAPS).
CAPS_FIELDS = (
    # Bit 0 is reserved (it said BAR2 mirrored smaller memory; since map 0.2
    # offsets beyond MEM_SIZE are answered with UR and writes dropped).
    Field("dma", 1, 1, "1 when the DMA engine is present (DMA block at DMA_BASE)"),
    Field("msix", 2, 1, "1 when MSI-X is implemented (MSIX_VECTORS vectors)"),
    Field("data_width_log2", 8, 4, "log2 of the hard-IP interface width in bits "
          "(6 = 64 ... 9 = 512)"),
)

CFG_FIELDS = (
    Field("max_payload", 0, 3, "Max Payload Size set by the host: 128 << value bytes"),
    Field("max_read_req", 4, 3, "Max Read Request Size set by the host: 128 << value bytes"),
    Field("rcb_128", 8, 1, "Read Completion Boundary: 0 = 64 bytes, 1 = 128 bytes"),
    Field("ext_tags", 9, 1, "Extended Tag Field Enable: the DMA engine keeps up to "
          "256 reads outstanding, else 32"),
)

CTRL_FIELDS = (
    Field("clear_counters", 0, 1, "write 1: set every counter in the error and "
          "statistics block to zero"),
)

REGISTERS = (
    Register("ID", 0x000, Access.RO, "magic number identifying a p2p-dax endpoint",
             reset=MAGIC),
    Register("VERSION", 0x004, Access.RO, "gateware version: major, minor, patch",
             fields=(Field("patch", 0, 8, ""), Field("minor", 8, 8, ""),
                     Field("major", 16, 8, "")),
             reset=(VERSION_MAJOR << 16) | (VERSION_MINOR << 8) | VERSION_PATCH),
    Register("CAPS", 0x008, Access.RO, "capabilities", fields=CAPS_FIELDS),
    Register("SCRATCH", 0x00C, Access.RW, "free read/write register for tests"),
    Register("BAR2_SIZE_LO", 0x010, Access.RO, "BAR2 size in bytes, bits 31:0"),
    Register("BAR2_SIZE_HI", 0x014, Access.RO, "BAR2 size in bytes, bits 63:32"),
    Register("MEM_SIZE_LO", 0x018, Access.RO, "bytes of memory behind BAR2 from its "
             "start (no more than BAR2_SIZE), bits 31:0"),
    Register("MEM_SIZE_HI", 0x01C, Access.RO, "bytes of memory behind BAR2, bits 63:32"),
    Register("CFG", 0x020, Access.RO, "link configuration the host set, as the "
             "hard IP reports it", fields=CFG_FIELDS),
    Register("CTRL", 0x024, Access.WO, "control strobes", fields=CTRL_FIELDS),
    Register("DMA_BASE", 0x028, Access.RO, "BAR0 offset of the DMA engine block "
             "(0 when absent)"),
    # Error counters: every request the endpoint did not serve normally.
    Register("ERR_UR", 0x040, Access.RO, "non-posted requests answered with "
             "Unsupported Request (I/O, atomics, locked reads, unknown BAR or type, "
             "reads of BAR2 beyond MEM_SIZE)"),
    Register("ERR_POSTED_DROPPED", 0x044, Access.RO, "unsupported posted requests "
             "dropped (writes to a BAR the endpoint does not have, messages)"),
    Register("ERR_POISONED_DROPPED", 0x048, Access.RO, "poisoned or discontinued "
             "writes dropped"),
    Register("ERR_MALFORMED_DROPPED", 0x04C, Access.RO, "requests longer than the "
             "largest payload the endpoint accepts, dropped (never stored)"),
    # Statistics.
    Register("STAT_WRITES", 0x050, Access.RO, "memory write requests served"),
    Register("STAT_READS", 0x054, Access.RO, "memory read requests served"),
    Register("STAT_CPLS", 0x058, Access.RO, "completion TLPs sent"),
    Register("ERR_UNBACKED_DROPPED", 0x05C, Access.RO, "writes to BAR2 beyond MEM_SIZE "
             "(no memory there), dropped"),
)

# DMA engine block. A descriptor is staged in DMA_LOCAL .. DMA_CONTROL and
# queued by a write to DMA_SUBMIT; descriptor number k (counting from 0 in
# the order submitted) reports in DMA_RESULT[k % DMA_RESULTS] once DMA_DONE
# has passed k. A write to DMA_ABORT ends every descriptor submitted before
# it, moving or not, with status ABORTED.
DMA_BLOCK_OFFSET = 0x1000
DMA_QUEUE_DEPTH = 16
DMA_RESULTS = 16
DMA_MAX_LENGTH = 1 << 24


class DmaStatus(IntEnum):
    """DMA_RESULT.status: how a descriptor ended. Defined here only: the
    driver's uAPI header carries these values in a block generated from this
    class (uapi_status_block())."""

    def __new__(cls, value, doc):
        member = int.__new__(cls, value)
        member._value_, member.doc = value, doc
        return member

    OK = 0, "all its data moved"
    UNSUPPORTED_REQUEST = 1, "the target answered UR"
    COMPLETER_ABORT = 2, "the target answered CA"
    TIMEOUT = 3, "no completion within the engine's completion timeout"
    POISONED = 4, "a completion carried poisoned or corrupt data"
    BAD_COMPLETION = 5, "a completion did not match its request"
    BAD_DESCRIPTOR = 6, ("refused: length 0 or over DMA_MAX_LENGTH, direction unknown, "
                         "or BAR2 range beyond MEM_SIZE")
    ABORTED = 7, "ended by DMA_ABORT: none, part or all of its data moved"


DMA_REGISTERS = (
    Register("DMA_LOCAL", DMA_BLOCK_OFFSET + 0x00, Access.RW,
             "staged descriptor: byte offset in BAR2"),
    Register("DMA_BUS_LO", DMA_BLOCK_OFFSET + 0x04, Access.RW,
             "staged descriptor: bus address, bits 31:0"),
    Register("DMA_BUS_HI", DMA_BLOCK_OFFSET + 0x08, Access.RW,
             "staged descriptor: bus address, bits 63:32"),
    Register("DMA_LENGTH", DMA_BLOCK_OFFSET + 0x0C, Access.RW,
             "staged descriptor: bytes to move, 1 to DMA_MAX_LENGTH"),
    Register("DMA_CONTROL", DMA_BLOCK_OFFSET + 0x10, Access.RW,
             "staged descriptor: direction, interrupt, identifier",
             fields=(Field("from_bus", 0, 1, "0: BAR2 -> bus (memory writes); "
                           "1: bus -> BAR2 (memory reads)"),
                     Field("irq", 1, 1, "interrupt when the descriptor ends"),
                     Field("vector", 2, 2, "the MSI-X vector of that interrupt"),
                     Field("id", 16, 16, "caller's identifier, echoed in DMA_RESULT"))),
    Register("DMA_SUBMIT", DMA_BLOCK_OFFSET + 0x14, Access.RW,
             "write: queue the staged descriptor (the value is ignored); "
             "read: free places in the queue"),
    Register("DMA_SUBMITTED", DMA_BLOCK_OFFSET + 0x18, Access.RO,
             "descriptors queued since reset"),
    Register("DMA_DONE", DMA_BLOCK_OFFSET + 0x1C, Access.RO,
             "descriptors ended since reset, successfully or not"),
    Register("DMA_TIMEOUT", DMA_BLOCK_OFFSET + 0x20, Access.RW,
             "completion timeout in clock cycles, 1 to 2^31 - 1", reset=1 << 20),
    Register("DMA_STATE", DMA_BLOCK_OFFSET + 0x24, Access.RO, "engine state",
             fields=(Field("busy", 0, 1, "a descriptor is queued or moving"),
                     Field("bus_master", 1, 1, "bus mastering is enabled: "
                           "nothing is sent while it is off"),
                     Field("aborting", 2, 1, "a DMA_ABORT is ending descriptors; "
                           "descriptors submitted meanwhile wait until it clears"))),
    Register("DMA_ERR_OVERFLOW", DMA_BLOCK_OFFSET + 0x28, Access.RO,
             "descriptors submitted while the queue was full (dropped)"),
    Register("DMA_READS", DMA_BLOCK_OFFSET + 0x2C, Access.RO,
             "read requests outstanding on the bus",
             fields=(Field("now", 0, 9, "outstanding now"),
                     Field("peak", 16, 9, "most outstanding at once since reset or "
                           "CTRL.clear_counters"))),
    Register("DMA_ABORT", DMA_BLOCK_OFFSET + 0x30, Access.WO,
             "write (the value is ignored): end every descriptor submitted before the "
             "write with status ABORTED, in order, each with its result and its "
             "interrupt. A write packet already started goes out whole, later ones "
             "not; outstanding reads are dropped (a late completion is ignored, its "
             "tag rests as after DMA_TIMEOUT). Once DMA_DONE has caught up with "
             "that DMA_SUBMITTED, the engine sends nothing more for them"),
) + tuple(
    Register(f"DMA_RESULT{k}", DMA_BLOCK_OFFSET + 0x100 + 4 * k, Access.RO,
             f"how descriptor number k ended, for k % {DMA_RESULTS} == {k}",
             fields=(Field("id", 0, 16, "DMA_CONTROL.id of the descriptor"),
                     Field("status", 16, 4, "a DmaStatus"),
                     Field("seq", 24, 8, "k % 256, to tell results apart")))
    for k in range(DMA_RESULTS))

# MSI-X table and Pending Bit Array (PCIe spec, MSI-X capability), in BAR0.
# The DMA engine signals descriptors that end with DMA_CONTROL.irq set on
# vector DMA_CONTROL.vector.
MSIX_VECTORS = 4
MSIX_TABLE_OFFSET = 0x8000
MSIX_PBA_OFFSET = 0x9000

MSIX_REGISTERS = tuple(
    reg
    for v in range(MSIX_VECTORS)
    for reg in (
        Register(f"MSIX_VEC{v}_ADDR_LO", MSIX_TABLE_OFFSET + 16 * v, Access.RW,
                 f"MSI-X vector {v}: message address, bits 31:0 (bits 1:0 stay 0)",
                 writable=0xFFFF_FFFC),
        Register(f"MSIX_VEC{v}_ADDR_HI", MSIX_TABLE_OFFSET + 16 * v + 4, Access.RW,
                 f"MSI-X vector {v}: message address, bits 63:32"),
        Register(f"MSIX_VEC{v}_DATA", MSIX_TABLE_OFFSET + 16 * v + 8, Access.RW,
                 f"MSI-X vector {v}: message data"),
        Register(f"MSIX_VEC{v}_CTRL", MSIX_TABLE_OFFSET + 16 * v + 12, Access.RW,
                 f"MSI-X vector {v}: vector control",
                 fields=(Field("mask", 0, 1, "1: the vector is masked (reset value)"),),
                 reset=1, writable=1),
    )
) + (
    Register("MSIX_PBA", MSIX_PBA_OFFSET, Access.RO,
             "MSI-X Pending Bit Array: bit v is set while vector v waits, masked"),
)

REGISTERS = REGISTERS + DMA_REGISTERS + MSIX_REGISTERS

COUNTERS = ("ERR_UR", "ERR_POSTED_DROPPED", "ERR_POISONED_DROPPED", "ERR_MALFORMED_DROPPED",
            "STAT_WRITES", "STAT_READS", "STAT_CPLS", "ERR_UNBACKED_DROPPED")


def by_name():
    return {r.name: r for r in REGISTERS}


def offset(name):
    return by_name()[name].offset


def check():
    """Raise ValueError if the map is inconsistent."""
    seen = {}
    for r in REGISTERS:
        if r.offset % 4 or not 0 <= r.offset < BAR0_SIZE:
            raise ValueError(f"{r.name}: offset {r.offset:#x} not a dword in BAR0")
        if r.offset in seen:
            raise ValueError(f"{r.name} and {seen[r.offset]} share offset {r.offset:#x}")
        seen[r.offset] = r.name
        if r.reset & ~r.writable and r.access == Access.RW:
            raise ValueError(f"{r.name}: reset value has bits that are not writable")
        bits = 0
        for f in r.fields:
            if f.lsb < 0 or f.lsb + f.width > 32:
                raise ValueError(f"{r.name}.{f.name} does not fit 32 bits")
            if bits & f.mask:
                raise ValueError(f"{r.name}.{f.name} overlaps another field")
            bits |= f.mask
    for name in COUNTERS:
        if name not in seen.values():
            raise ValueError(f"counter {name} is not a register")


check()


def markdown():
    """The register map as a Markdown table."""
    lines = ["| offset | name | access | description |", "|---|---|---|---|"]
    for r in REGISTERS:
        doc = r.doc
        if r.fields:
            doc += "; " + ", ".join(f"[{f.lsb + f.width - 1}:{f.lsb}] {f.name}"
                                   for f in r.fields)
        lines.append(f"| {r.offset:#06x} | {r.name} | {r.access.value} | {doc} |")
    return "\n".join(lines)


C_HEADER = "driver/p2p_dax_regs.h"     # committed; tests/test_regmap.py checks it is current
UAPI_HEADER = "driver/p2p_dax_ioctl.h"  # its DmaStatus block too
UAPI_BEGIN = "/* BEGIN DmaStatus: generated by `python -m hw.spec.regmap --update-uapi` */"
UAPI_END = "/* END DmaStatus */"


def _project_version():
    """The package version from pyproject.toml (the driver reports it)."""
    import tomllib
    from pathlib import Path
    with open(Path(__file__).resolve().parents[2] / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["version"]


def c_header():
    """The register map as a C header for the driver and for C code in the host library.

    Plain #defines only, so the same file serves kernel and user space. Field
    masks are in place (shifted): value = (reg & MASK) >> SHIFT.
    """
    def define(name, value):
        return f"#define {name:<44} {value}"

    out = ["/* SPDX-License-Identifier: GPL-2.0 OR MIT */",
           "/*",
           " * p2p-dax register map. Generated from hw/spec/regmap.py by",
           " * `python -m hw.spec.regmap --c-header`: do not edit by hand.",
           " */",
           "#ifndef P2P_DAX_REGS_H",
           "#define P2P_DAX_REGS_H",
           "",
           define("P2P_DAX_PROJECT_VERSION", f'"{_project_version()}"'),
           define("P2P_DAX_MAGIC", f"0x{MAGIC:08x}u"),
           define("P2P_DAX_MAP_VERSION_MAJOR", VERSION_MAJOR),
           define("P2P_DAX_MAP_VERSION_MINOR", VERSION_MINOR),
           define("P2P_DAX_MAP_VERSION_PATCH", VERSION_PATCH),
           define("P2P_DAX_PCI_VENDOR_ID", f"0x{PCI_VENDOR_ID:04x}"),
           define("P2P_DAX_PCI_DEVICE_ID", f"0x{PCI_DEVICE_ID:04x}"),
           define("P2P_DAX_PCI_SUBSYSTEM_VENDOR_ID", f"0x{PCI_SUBSYSTEM_VENDOR_ID:04x}"),
           define("P2P_DAX_PCI_SUBSYSTEM_ID", f"0x{PCI_SUBSYSTEM_ID:04x}"),
           define("P2P_DAX_PCI_REVISION_ID", f"0x{PCI_REVISION_ID:02x}"),
           define("P2P_DAX_PCI_CLASS_CODE", f"0x{PCI_CLASS_CODE:06x}"),
           define("P2P_DAX_BAR0_SIZE", f"0x{BAR0_SIZE:x}u"),
           define("P2P_DAX_BAR2_MIN_SIZE", f"0x{BAR2_MIN_SIZE:x}u"),
           define("P2P_DAX_DMA_QUEUE_DEPTH", DMA_QUEUE_DEPTH),
           define("P2P_DAX_DMA_RESULTS", DMA_RESULTS),
           define("P2P_DAX_DMA_MAX_LENGTH", f"0x{DMA_MAX_LENGTH:x}u"),
           define("P2P_DAX_MSIX_VECTORS", MSIX_VECTORS),
           "",
           "/* DMA_RESULT.status: P2P_DAX_DMA_STATUS_* in the uAPI header, p2p_dax_ioctl.h */"]
    for r in REGISTERS:
        out += ["", f"/* {r.name} ({r.access.value}): {r.doc} */",
                define(f"P2P_DAX_REG_{r.name}", f"0x{r.offset:04x}")]
        for f in r.fields:
            out += [define(f"P2P_DAX_{r.name}_{f.name.upper()}_SHIFT", f.lsb),
                    define(f"P2P_DAX_{r.name}_{f.name.upper()}_MASK", f"0x{f.mask:08x}u")]
    out += ["", "#endif /* P2P_DAX_REGS_H */", ""]
    return "\n".join(out)


def uapi_status_block():
    """DmaStatus as the uAPI header's P2P_DAX_DMA_STATUS_* lines, markers included."""
    lines = [UAPI_BEGIN]
    for status in DmaStatus:
        name = f"P2P_DAX_DMA_STATUS_{status.name}"
        lines.append(f"#define {name:<40}{status.value}\t/* {status.doc} */")
    return "\n".join(lines + [UAPI_END])


def with_uapi_status(header_text):
    """The uAPI header's text with its DmaStatus block made current."""
    begin, end = header_text.find(UAPI_BEGIN), header_text.find(UAPI_END)
    if begin < 0 or end < begin:
        raise ValueError(f"{UAPI_HEADER} has no DmaStatus block: put the lines "
                         f"{UAPI_BEGIN!r} and {UAPI_END!r} where it goes")
    return header_text[:begin] + uapi_status_block() + header_text[end + len(UAPI_END):]


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(prog="python -m hw.spec.regmap",
                                     description="Print the p2p-dax register map.")
    parser.add_argument("--c-header", action="store_true",
                        help=f"print the C header (committed as {C_HEADER})")
    parser.add_argument("--update-uapi", action="store_true",
                        help=f"rewrite the DmaStatus block of {UAPI_HEADER} from this map")
    args = parser.parse_args()
    if args.update_uapi:
        from pathlib import Path
        path = Path(__file__).resolve().parents[2] / UAPI_HEADER
        path.write_text(with_uapi_status(path.read_text()))
    else:
        print(c_header() if args.c_header else markdown(), end="" if args.c_header else "\n")
