"""PCIe Base Specification facts as tables, field -> (lsb, width): TLP
headers (chapter 2), for the 7-series hard IP, which hands TLPs over whole
(hw/spec/s7_stream.py), and the configuration registers the endpoint and
the bus models read (chapter 7).

A TLP header of up to 4 DWs is taken as one number: DW n in bits
32n+31..32n, and within a DW the bits numbered as the specification
numbers them (bit 31 is the first bit on the wire: Fmt[2]). A 3-DW header
has DW 3 = 0.
"""

from enum import IntEnum

from hw.spec import fields

# Pack and read these tables as any other (hw/spec/fields.py).
pack, unpack, replace = fields.pack, fields.unpack, fields.replace

HEADER_DWORDS = 4

# DW 0, common to every TLP.
COMMON = {
    "length": (0, 10),              # payload DWs, 0 means 1024
    "at": (10, 2),                  # address type
    "attr_lo": (12, 2),             # Attr[1:0]: No Snoop, Relaxed Ordering
    "poisoned": (14, 1),            # EP
    "digest": (15, 1),              # TD: an ECRC follows
    "attr_hi": (18, 1),             # Attr[2]: ID-Based Ordering
    "tc": (20, 3),
    "type": (24, 5),
    "fmt": (29, 3),                 # FMT_4DW | FMT_DATA
}

# Memory, I/O and atomic requests.
REQUEST = {
    **COMMON,
    "first_be": (32, 4),
    "last_be": (36, 4),
    "tag": (40, 8),
    "requester_id": (48, 16),
    "address32": (66, 30),          # 3-DW header: address[31:2]
    "address_hi": (64, 32),         # 4-DW header: address[63:32] ...
    "address_lo": (98, 30),         # ... and address[31:2]
}

# Messages.
MESSAGE = {
    **COMMON,
    "message_code": (32, 8),
    "tag": (40, 8),
    "requester_id": (48, 16),
}

# Completions.
COMPLETION = {
    **COMMON,
    "byte_count": (32, 12),         # bytes left, 0 means 4096
    "bcm": (44, 1),
    "status": (45, 3),              # CplStatus
    "completer_id": (48, 16),
    "lower_address": (64, 7),
    "tag": (72, 8),
    "requester_id": (80, 16),
}

FMT_4DW = 0b001                     # a 4-DW header
FMT_DATA = 0b010                    # a payload follows


class TlpType(IntEnum):
    """The Type field (with Fmt telling reads from writes)."""
    MEM = 0b00000
    MEM_LOCKED = 0b00001
    IO = 0b00010
    CFG0 = 0b00100
    CPL = 0b01010                   # Cpl / CplD
    CPL_LOCKED = 0b01011            # CplLk / CplDLk
    FETCH_ADD = 0b01100
    SWAP = 0b01101
    CAS = 0b01110
    MSG = 0b10000                   # 0b10rrr: messages, rrr the routing


# Configuration registers (16 bits each).
COMMAND = {
    "io_space": (0, 1), "memory_space": (1, 1), "bus_master": (2, 1),
    "parity_error_response": (6, 1), "serr": (8, 1), "interrupt_disable": (10, 1),
}
DEVICE_CONTROL = {                  # PCI Express Capability + 0x08
    "correctable_error_reporting": (0, 1), "non_fatal_error_reporting": (1, 1),
    "fatal_error_reporting": (2, 1), "unsupported_request_reporting": (3, 1),
    "relaxed_ordering": (4, 1),
    "max_payload": (5, 3),          # 128 << value bytes
    "ext_tag": (8, 1),              # Extended Tag Field Enable
    "phantom_functions": (9, 1), "aux_power_pm": (10, 1), "no_snoop": (11, 1),
    "max_read_req": (12, 3),        # 128 << value bytes
}
LINK_CONTROL = {                    # PCI Express Capability + 0x10
    "aspm_control": (0, 2),
    "rcb": (3, 1),                  # Read Completion Boundary: 1 = 128 bytes
    "link_disable": (4, 1), "common_clock": (6, 1), "extended_synch": (7, 1),
    "clock_power_management": (8, 1), "hw_autonomous_width_disable": (9, 1),
    "bandwidth_management_interrupt": (10, 1), "autonomous_bandwidth_interrupt": (11, 1),
}
