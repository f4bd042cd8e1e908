"""The Xilinx UltraScale+ PCIe hard-IP user interface (PG213), as facts.

Dword-aligned mode without straddling. Widths and sideband (tuser) bit
positions per data width, and the descriptor encodings shared by the
gateware and the testbenches. No Amaranth import here.
"""

from dataclasses import dataclass
from enum import IntEnum

from hw.spec.fields import from_dwords, pack, replace, to_dwords, unpack

DATA_WIDTHS = (64, 128, 256, 512)


class ReqType(IntEnum):
    """Request type field of a CQ/RQ descriptor (bits 78:75)."""
    MEM_READ = 0b0000
    MEM_WRITE = 0b0001
    IO_READ = 0b0010
    IO_WRITE = 0b0011
    MEM_FETCH_ADD = 0b0100
    MEM_SWAP = 0b0101
    MEM_CAS = 0b0110
    MEM_READ_LOCKED = 0b0111
    CFG_READ_0 = 0b1000
    CFG_READ_1 = 0b1001
    CFG_WRITE_0 = 0b1010
    CFG_WRITE_1 = 0b1011
    MSG = 0b1100
    MSG_VENDOR = 0b1101
    MSG_ATS = 0b1110


POSTED_TYPES = {ReqType.MEM_WRITE, ReqType.MSG, ReqType.MSG_VENDOR, ReqType.MSG_ATS}
ATOMIC_TYPES = {ReqType.MEM_FETCH_ADD, ReqType.MEM_SWAP, ReqType.MEM_CAS}


class CplStatus(IntEnum):
    SC = 0b000
    UR = 0b001
    CRS = 0b010
    CA = 0b100


@dataclass(frozen=True)
class Sideband:
    """tuser widths and bit positions for one data width.

    Positions are the lsb of the field; None where the field does not exist
    at this width. RQ/RC positions follow cocotbext-pcie's RqSource/RqSink
    and RcSource/RcSink (xilinx/us/interface.py), which agree with PG213 for
    dword-aligned mode without straddling. Parity (RQ tuser[59:28] or
    [136:73], RC tuser[74:43] or [160:97]) is left out: the hard-IP model
    checks it only when built with enable_parity.
    """
    cq_user: int
    cc_user: int
    rq_user: int
    rc_user: int
    cq_first_be: int        # lsb of first_be[3:0]
    cq_last_be: int         # lsb of last_be[3:0]
    cq_discontinue: int
    cq_sop: int             # sop below 512 bits, is_sop[0] at 512
    cq_is_eop: int          # 512-bit only: is_eop[1:0] (straddling), else None
    cc_is_sop: int          # 512-bit only, else None
    cc_is_eop: int
    cc_eop_ptr: int
    cc_discontinue: int
    # RQ (the endpoint's requests). No straddling, so only slot 0 is used at
    # 512 bits: first_be/last_be/seq_num of slot 1 sit 4/4/6 bits higher.
    rq_first_be: int        # first_be[3:0] of the packet that starts in this beat
    rq_last_be: int
    rq_discontinue: int
    rq_seq_num: int         # seq_num[3:0] below 512 bits, seq_num0[5:0] at 512
    rq_seq_num_width: int   # 4 below 512 bits, 6 at 512
    rq_seq_num_hi: int      # seq_num[5:4] in the 62-bit tuser; None at 512
    rq_is_sop: int          # 512-bit only: is_sop[1:0]
    rq_sop_ptr: int         # 512-bit only: is_sop0_ptr[1:0]
    rq_is_eop: int          # 512-bit only: is_eop[1:0]
    rq_eop_ptr: int         # 512-bit only: is_eop0_ptr[3:0], last dword of the packet
    # RC (completions to the endpoint's reads).
    rc_byte_en: int         # byte_en: 4 bits per dword lane, lane 0 first
    rc_is_sop: int          # is_sof_0 below 512 bits, is_sop[0] at 512
    rc_is_eop: int          # is_eof_0[0] below 512 bits, is_eop[0] at 512
    rc_eop_ptr: int         # is_eof_0[3:1] (3 bits) below 512, is_eop0_ptr[3:0] at 512
    rc_is_eop1: int         # is_eof_1[0] (256-bit straddling), else None
    rc_discontinue: int


def sideband(width):
    if width not in DATA_WIDTHS:
        raise ValueError(f"data width {width} not one of {DATA_WIDTHS}")
    if width == 512:
        return Sideband(cq_user=183, cc_user=81, rq_user=137, rc_user=161,
                        cq_first_be=0, cq_last_be=8, cq_discontinue=96, cq_sop=80, cq_is_eop=86,
                        cc_is_sop=0, cc_is_eop=6, cc_eop_ptr=8, cc_discontinue=16,
                        rq_first_be=0, rq_last_be=8, rq_discontinue=36,
                        rq_seq_num=61, rq_seq_num_width=6, rq_seq_num_hi=None,
                        rq_is_sop=20, rq_sop_ptr=22, rq_is_eop=26, rq_eop_ptr=28,
                        rc_byte_en=0, rc_is_sop=64, rc_is_eop=76, rc_eop_ptr=80,
                        rc_is_eop1=None, rc_discontinue=96)
    return Sideband(cq_user=88, cc_user=33, rq_user=62, rc_user=75,
                    cq_first_be=0, cq_last_be=4, cq_discontinue=41, cq_sop=40, cq_is_eop=None,
                    cc_is_sop=None, cc_is_eop=None, cc_eop_ptr=None, cc_discontinue=0,
                    rq_first_be=0, rq_last_be=4, rq_discontinue=11,
                    rq_seq_num=24, rq_seq_num_width=4, rq_seq_num_hi=60,
                    rq_is_sop=None, rq_sop_ptr=None, rq_is_eop=None, rq_eop_ptr=None,
                    rc_byte_en=0, rc_is_sop=32, rc_is_eop=34, rc_eop_ptr=35,
                    rc_is_eop1=38, rc_discontinue=42)


# ---------------------------------------------------------------------------
# The four descriptors: field -> (lsb, width) over the descriptor, dword 0
# in bits 31:0 (PG213 dword-aligned mode; checked against cocotbext-pcie's
# Tlp_us pack_us_* / unpack_us_* by tests/test_pcie_checker.py).
# ---------------------------------------------------------------------------

CQ_DESCRIPTOR_DWORDS = 4            # the payload starts at dword 4
CQ_DESCRIPTOR = {
    "at": (0, 2),                   # address type
    "address": (2, 62),             # address[63:2]: dword address >> 2
    "dw_count": (64, 11),           # 0 means 1024 for a memory request
    "req_type": (75, 4),            # ReqType
    "requester_id": (80, 16),
    "tag": (96, 8),
    "target_function": (104, 8),
    "bar_id": (112, 3),
    "bar_aperture": (115, 6),       # log2 of the BAR's size
    "tc": (121, 3),
    "attr": (124, 3),
}

CC_DESCRIPTOR_DWORDS = 3            # the payload starts at dword 3
CC_DESCRIPTOR = {
    "lower_address": (0, 7),
    "at": (8, 2),
    "byte_count": (16, 13),         # bytes left in the request, 4096 as 4096
    "locked": (29, 1),              # a completion to a locked read
    "dw_count": (32, 11),
    "status": (43, 3),              # CplStatus
    "poisoned": (46, 1),
    "requester_id": (48, 16),
    "tag": (64, 8),
    "completer_function": (72, 8),
    "completer_bus": (80, 8),
    "completer_id_enable": (88, 1),
    "tc": (89, 3),
    "attr": (92, 3),
    "force_ecrc": (95, 1),
}

RQ_DESCRIPTOR_DWORDS = 4
RQ_DESCRIPTOR = {
    "at": (0, 2),                   # address type: 0 untranslated
    "address": (2, 62),             # address[63:2]: dword address >> 2
    "dw_count": (64, 11),           # 1..1024
    "req_type": (75, 4),            # ReqType
    "poisoned": (79, 1),
    "requester_id": (80, 16),
    "tag": (96, 8),
    "completer_id": (104, 16),      # configuration requests only
    "requester_id_enable": (120, 1),
    "tc": (121, 3),
    "attr": (124, 3),
    "force_ecrc": (127, 1),         # not packed by cocotbext (a TODO there)
}

RC_DESCRIPTOR_DWORDS = 3            # the payload starts at dword 3
RC_DESCRIPTOR = {
    "lower_address": (0, 12),       # low 12 bits of the byte address of the first byte
    "error_code": (12, 4),          # RcErrorCode
    "byte_count": (16, 13),         # bytes left in the request, this completion's included
    "locked": (29, 1),
    "request_completed": (30, 1),   # the last completion of the request
    "dw_count": (32, 11),
    "status": (43, 3),              # CplStatus
    "poisoned": (46, 1),
    "requester_id": (48, 16),
    "tag": (64, 8),
    "completer_id": (72, 16),
    "tc": (89, 3),
    "attr": (92, 3),
}


class RcErrorCode(IntEnum):
    """RC descriptor error code: what the hard IP found wrong with a completion."""
    NORMAL_TERMINATION = 0b0000
    POISONED = 0b0001
    BAD_STATUS = 0b0010
    INVALID_LENGTH = 0b0011
    MISMATCH = 0b0100
    INVALID_ADDRESS = 0b0101
    INVALID_TAG = 0b0110
    FLR = 0b1000
    TIMEOUT = 0b1001


def pack_descriptor(layout, ndwords, **fields):
    """Descriptor dwords from field values; unnamed fields are 0."""
    return to_dwords(pack(layout, **fields), ndwords)


def replace_field(layout, dwords, name, value):
    """The dwords with one field set to `value` and every other bit kept."""
    return to_dwords(replace(layout, from_dwords(dwords), **{name: value}), len(dwords))


def unpack_descriptor(layout, dwords):
    """Field values (ints) of a descriptor given as its first dwords."""
    return unpack(layout, from_dwords(dwords))


def mps_bytes(code):
    """cfg_max_payload / Device Control encoding to bytes (reserved -> 128)."""
    return 128 << code if code <= 5 else 128


def rcb_bytes(bit):
    return 128 if bit else 64


# ---------------------------------------------------------------------------
# Configuration space as seen through cfg_mgmt (dword addresses). The hard
# IP puts the PCI Express Capability at byte 0x70; the hard IP exports Max
# Payload Size and Max Read Request Size on cfg_* outputs, but not Extended
# Tag Field Enable, so the endpoint reads Device Control itself.
# ---------------------------------------------------------------------------

PCIE_CAP_OFFSET = 0x70
DEVICE_CONTROL_DWORD = (PCIE_CAP_OFFSET + 0x08) // 4

# cfg_function_status, function 0's four bits (PG213): the Command register's.
FUNCTION_STATUS = {"io_space": (0, 1), "memory_space": (1, 1), "bus_master": (2, 1),
                   "intx_disable": (3, 1)}
