"""Requests of any kind into an endpoint, past the hard IP's own checks, and
what the testbenches read back: shared by the test modules.

    tlp = request_tlp(ep, ReqType.MEM_READ_LOCKED, address=..., dw_count=2)
    await inject(ep, ReqType.MSG_VENDOR, address=..., data=b"...")     # posted
    cpl = await nonposted(tb, ep, ReqType.IO_READ, address=0x1000, bar_id=0)
    cpls = await completions(tb, ep, ReqType.MEM_READ, address=..., dw_count=64)
    before = await counters(ep)

On UltraScale+ a request goes straight onto CQ as a descriptor; on 7-series
as a TLP onto the receive stream. Either way a non-posted request takes a
non-posted credit the endpoint granted, as it would through the hard IP.
"""

from cocotb.triggers import RisingEdge
from cocotbext.pcie.core.tlp import CplStatus, TlpType
from cocotbext.pcie.core.utils import PcieId
from cocotbext.pcie.xilinx.us.tlp import Tlp_us

from hw.spec import pcie, regmap
from hw.spec.usp import (CQ_DESCRIPTOR, CQ_DESCRIPTOR_DWORDS, POSTED_TYPES, ReqType,
                         replace_field)

TIMEOUT_NS = 20_000
MESSAGES = (ReqType.MSG, ReqType.MSG_VENDOR, ReqType.MSG_ATS)


def random_pauses(rng, busy):
    """Endless pause pattern: paused (True) with probability `busy`."""
    while True:
        yield rng.random() < busy


def request_tlp(ep, req_type, *, address, dw_count=1, first_be=0xF, last_be=0, bar_id=2,
                tag=0, requester_id=PcieId(0, 0, 0), data=b""):
    """A request TLP of any type (a message is a write here: cq_request retypes
    it; on 7-series, inject() sends a real message)."""
    tlp = Tlp_us()
    if req_type in MESSAGES:
        tlp.fmt_type = TlpType.MEM_WRITE_64
    else:
        tlp.fmt_type = {
            ReqType.MEM_READ: TlpType.MEM_READ_64, ReqType.MEM_WRITE: TlpType.MEM_WRITE_64,
            ReqType.IO_READ: TlpType.IO_READ, ReqType.IO_WRITE: TlpType.IO_WRITE,
            ReqType.MEM_FETCH_ADD: TlpType.FETCH_ADD_64, ReqType.MEM_SWAP: TlpType.SWAP_64,
            ReqType.MEM_CAS: TlpType.CAS_64, ReqType.MEM_READ_LOCKED: TlpType.MEM_READ_LOCKED_64,
        }[req_type]
    tlp.requester_id = requester_id
    tlp.tag = tag
    tlp.address = address
    tlp.length = dw_count
    tlp.first_be = first_be
    tlp.last_be = last_be
    tlp.bar_id = bar_id
    tlp.completer_id = ep.function.pcie_id
    if data:
        tlp.data = bytearray(data)
    return tlp


def cq_request(ep, req_type, *, discontinue=False, **kw):
    """A CQ frame for any request type, as the UltraScale+ hard IP would deliver it."""
    frame = request_tlp(ep, req_type, **kw).pack_us_cq()
    n = CQ_DESCRIPTOR_DWORDS
    frame.data[:n] = replace_field(CQ_DESCRIPTOR, frame.data[:n], "req_type", req_type)
    frame.discontinue = discontinue
    frame.update_parity()
    return frame


async def _np_credit(ep):
    """Take one of the non-posted credits the endpoint granted the hard-IP
    model (pcie_cq_np_req), waiting for one as the hard IP would."""
    while ep.model.cq_np_req_count <= 0:
        await RisingEdge(ep.clk)
    ep.model.cq_np_req_count -= 1


async def inject(ep, req_type, discontinue=False, **kw):
    """Put a request into the endpoint past the hard IP's own checks: on
    UltraScale+ a descriptor straight onto CQ (a non-posted one on a credit);
    on 7-series a TLP straight onto the receive stream, where the model holds
    a non-posted one for credit (messages as messages, a discontinued write
    poisoned)."""
    if not ep.s7:
        frame = cq_request(ep, req_type, discontinue=discontinue, **kw)
        if req_type not in POSTED_TYPES:
            await _np_credit(ep)
        await ep.model.cq_source.send(frame)
        return
    bar = kw.get("bar_id", 2)
    if req_type in MESSAGES:
        # cocotbext packs no messages: a Msg/MsgD routed to the receiver
        # (type 10100), 4-DW header, vendor-defined code 0x7E for MSG_VENDOR.
        data = kw.get("data", b"")
        code = 0x7E if req_type == ReqType.MSG_VENDOR else 0x00
        header = pcie.pack(pcie.MESSAGE, fmt=pcie.FMT_4DW | (pcie.FMT_DATA if data else 0),
                           type=pcie.TlpType.MSG | 0b100, length=len(data) // 4,
                           tag=kw.get("tag", 0), message_code=code)
        h = [(header >> 32 * i) & 0xFFFF_FFFF for i in range(pcie.HEADER_DWORDS)]
        ep.model.inject(b"".join(w.to_bytes(4, "big") for w in h) + data, bar=bar)
        return
    tlp = request_tlp(ep, req_type, **kw)
    tlp.ep = discontinue
    ep.model.inject(tlp, bar=bar)


async def nonposted(tb, ep, req_type, **kw):
    """Send a non-posted request into the endpoint; return its completion at the RC."""
    tag = await tb.rc.alloc_tag()
    try:
        await inject(ep, req_type, tag=tag, **kw)
        cpl = await tb.rc.recv_cpl(tag, TIMEOUT_NS, "ns")
    finally:
        tb.rc.release_tag(tag)
    assert cpl is not None, f"no completion for {req_type.name}: the endpoint hung or dropped it"
    return cpl


async def completions(tb, ep, req_type, timeout_ns=TIMEOUT_NS, **kw):
    """Send a non-posted request into the endpoint; return every completion
    the RC receives for it, in order: up to the one that ends a memory read
    (its Byte Count fits in its data), or the first for anything else or an
    unsuccessful status. timeout_ns: the longest wait for each."""
    tag = await tb.rc.alloc_tag()
    cpls = []
    try:
        await inject(ep, req_type, tag=tag, **kw)
        while True:
            cpl = await tb.rc.recv_cpl(tag, timeout_ns, "ns")
            assert cpl is not None, (f"no completion {len(cpls) + 1} for {req_type.name}: "
                                     "the endpoint hung or dropped it")
            cpls.append(cpl)
            if cpl.status != CplStatus.SC or cpl.fmt_type in (TlpType.CPL, TlpType.CPL_LOCKED) \
                    or cpl.byte_count <= 4 * cpl.length - (cpl.lower_address & 3):
                return cpls
    finally:
        tb.rc.release_tag(tag)


async def counters(ep):
    return {name: await ep.read_reg(name) for name in regmap.COUNTERS}


async def counters_at_once(ep):
    """Every counter from one read of BAR0 (one request, one completion; the
    read counts in STAT_READS and STAT_CPLS itself)."""
    first = min(regmap.offset(name) for name in regmap.COUNTERS)
    last = max(regmap.offset(name) for name in regmap.COUNTERS)
    raw = await ep.bar0.read(first, last + 4 - first)
    return {name: int.from_bytes(raw[regmap.offset(name) - first:][:4], "little")
            for name in regmap.COUNTERS}


async def clear_counters(ep):
    """Clear the counters and wait until the clear has taken effect: frames
    injected into CQ bypass the link, so they could overtake a posted write."""
    await ep.write_reg("CTRL", 1)
    assert await ep.read_reg("ERR_UR") == 0
