"""The interfaces between the endpoint's gateware blocks: their signatures
and the layouts of what they pass, so that each block is described and
tested alone and `BarEndpoint` joins them with `wiring.connect`.

Storage is organised as N = width/32 dword-wide banks (N lanes of a bus
beat): a beat whose first lane falls on dword address t writes or reads
bank b at row t/N + (b < t mod N), so any dword alignment takes one
cycle. `bank_row` is that rule; the dispatcher (writes) and the completer
(reads) use it.
"""

from amaranth.hdl import Const, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.core import axi
from hw.spec import regmap
from hw.spec.usp import ReqType


def log2(x):
    return x.bit_length() - 1


def dword_address_bits(p):
    """Bits of a dword address within the larger of the two BARs."""
    return max(log2(p.bar2_size // 4), log2(p.bar0_size // 4))


def row_bits(p):
    """Bits of a bank row address covering the larger BAR."""
    return dword_address_bits(p) - log2(p.lanes)


def bank_row(base_row, rot, bank, logn):
    """Row of `bank` for a beat whose lane 0 is at row `base_row`, rotated by `rot`."""
    return base_row + (Const(bank, logn + 1) < rot)


def is_non_posted(req_type):
    """True for a request type that needs a completion (not a write or a message)."""
    return ~req_type.matches(ReqType.MEM_WRITE, ReqType.MSG, ReqType.MSG_VENDOR,
                             ReqType.MSG_ATS, 0b1111)


def axis_signature(width, user_width):
    """An AXI4-Stream of the hard IP, seen from its source."""
    return wiring.Signature({
        "tdata": Out(width), "tkeep": Out(width // 32), "tlast": Out(1),
        "tuser": Out(user_width), "tvalid": Out(1), "tready": In(1),
    })


def cq_beat_layout(p):
    """A beat of a whole CQ packet leaving the ingress FIFO, with the packet's
    verdicts: `discard` (the hard IP flagged its payload, or it is too long)
    and `over` (longer than the largest request: malformed)."""
    return data.StructLayout({
        "data": p.data_width, "keep": p.lanes, "last": 1, "first_be": 4, "last_be": 4,
        "discard": 1, "over": 1,
    })


# Kinds of non-posted request the completer answers.
NP_READ, NP_UR = 0, 1


def np_request_layout(p):
    """A non-posted request, as the dispatcher queues it for the completer."""
    return data.StructLayout({
        "kind": 1, "bar0": 1, "dw_addr": dword_address_bits(p), "dw_count": 11,
        "fbe": 4, "lbe": 4, "req_id": 16, "tag": 8, "func": 8,
        "tc": 3, "attr": 3, "locked": 1,
        "bc_fixed": 1,                  # 1: the completion's Byte Count is `bc`
        "bc": 13,
        "ticket": 8,                    # BAR2 writes before it (Dispatcher)
    })


def bank_write_signature(p):
    """One beat of a request's payload, rotated to the banks: with `en`, bank
    b writes word b of `data` at `row[b]` with byte enables be[4b:4b+4].
    `bar0` chooses registers over memory."""
    return wiring.Signature({
        "en": Out(1),
        "row": Out(data.ArrayLayout(unsigned(row_bits(p)), p.lanes)),
        "data": Out(p.data_width), "be": Out(4 * p.lanes), "bar0": Out(1),
    })


def bank_read_signature(p):
    """A read of one row in every bank, issued with `en`; `data` (word b from
    bank b) follows one cycle later."""
    return wiring.Signature({
        "en": Out(1),
        "row": Out(data.ArrayLayout(unsigned(row_bits(p)), p.lanes)),
        "data": In(p.data_width),
    })


# BAR2's memory is an AXI4 port (hw/core/axi.py) addressed by BAR offset,
# one ID bit; block RAM smaller than the BAR mirrors it.
TLP_DWORDS_BITS = 11                    # a TLP's payload: 1 to 1024 dwords
MEMORY_ID_BITS = 2                      # the arbiter's master bit over each master's one
# Completions the completer has asked memory for and not yet sent: enough
# to cover DRAM's latency (about 150 cycles) at a beat a cycle.
READS_IN_FLIGHT = 64


def memory_addr_bits(p):
    return log2(p.bar2_size)


def memory_write_signature(p):
    return axi.axi_write_signature(memory_addr_bits(p), p.data_width, 1)


def memory_read_signature(p):
    return axi.axi_read_signature(memory_addr_bits(p), p.data_width, 1)


def memory_writer_args(p):
    """AxiWriter's arguments for writes of a TLP's payload into BAR2."""
    return {"data_width": p.data_width, "addr_width": memory_addr_bits(p),
            "count_bits": TLP_DWORDS_BITS}


def dma_memory_signature(data_width, row_bits):
    """The DMA engine's port to BAR2's banks, seen from the engine: reads
    when granted (data one cycle after the grant), writes unless busy."""
    n = data_width // 32
    return wiring.Signature({
        "rd_want": Out(1), "rd_grant": In(1),
        "rd_row": Out(row_bits * n), "rd_data": In(data_width),
        "wr_en": Out(4 * n), "wr_row": Out(row_bits * n), "wr_data": Out(data_width),
        "wr_busy": In(1),
    })


def dma_descriptor_signature(local_bits):
    """A descriptor offered to the DMA engine, seen from the queue offering it."""
    return wiring.Signature({
        "valid": Out(1), "ready": In(1),
        "local": Out(local_bits), "bus": Out(64), "length": Out(25),
        "from_bus": Out(1), "irq": Out(1), "id": Out(16), "vector": Out(2),
        "abort": Out(1),                # it ends ABORTED, moving nothing
    })


def dma_result_signature():
    """How a descriptor ended, one a cycle, in the order they were queued."""
    return wiring.Signature({
        "valid": Out(1), "id": Out(16), "status": Out(4), "irq": Out(1), "vector": Out(2),
    })


def counter_events_layout(names):
    return data.StructLayout({name.lower(): 1 for name in names})


ALL_COUNTERS = counter_events_layout(regmap.COUNTERS)


def cq_stream_signature(p):
    return stream.Signature(cq_beat_layout(p))


def np_stream_signature(p):
    return stream.Signature(np_request_layout(p))
