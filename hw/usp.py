"""The Xilinx UltraScale+ PCIe hard-IP user interface (PG213), as facts.

Dword-aligned mode without straddling. Widths and sideband (tuser) bit
positions per data width, and the descriptor encodings shared by the
gateware and the testbenches. No Amaranth import here.
"""

from dataclasses import dataclass
from enum import IntEnum

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
    """tuser widths and bit positions for one data width."""
    cq_user: int
    cc_user: int
    rq_user: int
    rc_user: int
    cq_first_be: int        # lsb of first_be[3:0]
    cq_last_be: int         # lsb of last_be[3:0]
    cq_discontinue: int
    cc_is_sop: int          # 512-bit only, else None
    cc_is_eop: int
    cc_eop_ptr: int
    cc_discontinue: int


def sideband(width):
    if width not in DATA_WIDTHS:
        raise ValueError(f"data width {width} not one of {DATA_WIDTHS}")
    if width == 512:
        return Sideband(cq_user=183, cc_user=81, rq_user=137, rc_user=161,
                        cq_first_be=0, cq_last_be=8, cq_discontinue=96,
                        cc_is_sop=0, cc_is_eop=6, cc_eop_ptr=8, cc_discontinue=16)
    return Sideband(cq_user=88, cc_user=33, rq_user=62, rc_user=75,
                    cq_first_be=0, cq_last_be=4, cq_discontinue=41,
                    cc_is_sop=None, cc_is_eop=None, cc_eop_ptr=None, cc_discontinue=0)


def mps_bytes(code):
    """cfg_max_payload / Device Control encoding to bytes (reserved -> 128)."""
    return 128 << code if code <= 5 else 128


def rcb_bytes(bit):
    return 128 if bit else 64
