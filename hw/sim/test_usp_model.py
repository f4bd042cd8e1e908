"""The UltraScale+ hard-IP model (hw.sim.tb.usp_model) against the endpoint RTL.

What the stock cocotbext-pcie model got wrong, shown on the real RTL:
non-posted credit lost under load (a burst of reads stalled for good),
atomics and locked reads delivered without credit or not at all, and
discontinue on every beat of a packet rather than the last. A monitor
watches endpoint A's CQ bus on every clock edge: the credits the RTL grants
(pcie_cq_np_req), and every packet the RTL accepts with its discontinue bit
per beat.
"""

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from hw.core import ports
from hw.sim.tb.requests import cq_request, random_pauses
from hw.sim.tb.topology import Topology
from hw.sim.tb.usp_model import NP_CREDIT_LIMIT, np_credits
from hw.spec.usp import (CQ_DESCRIPTOR, CQ_DESCRIPTOR_DWORDS, POSTED_TYPES, ReqType,
                         sideband, unpack_descriptor)

READS = 64                 # in one burst: four times the endpoint's NP queue
WRITES = 32                # of 512 bytes, streaming past each burst
TIMEOUT_US = 400


def _int(signal):
    v = signal.value
    return int(v) if v.is_resolvable else None


class CqMonitor:
    """Endpoint `ep`'s CQ bus and credit input, sampled on every rising edge."""

    def __init__(self, dut, ep, width):
        sig = lambda name: getattr(dut, f"{ep.inst}_{name}")
        self.clk, self.rst = ep.clk, ep.rst
        self.tvalid, self.tready = sig("s_axis_cq_tvalid"), sig("s_axis_cq_tready")
        self.tlast, self.tkeep = sig("s_axis_cq_tlast"), sig("s_axis_cq_tkeep")
        self.tdata, self.tuser = sig("s_axis_cq_tdata"), sig("s_axis_cq_tuser")
        self.np_req = sig("pcie_cq_np_req")
        self.disc_bit = sideband(width).cq_discontinue
        self.lanes = width // 32
        self.grants = 0            # credits pcie_cq_np_req granted, outside reset
        self.packets = []          # (ReqType, [discontinue bit of each beat])
        self._dwords, self._discs = [], []
        cocotb.start_soon(self._run())

    @property
    def nonposted(self):
        return sum(1 for t, _ in self.packets if t not in POSTED_TYPES)

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            if _int(self.rst) != 0:
                self._dwords, self._discs = [], []
                continue
            self.grants += np_credits((_int(self.np_req) or 0) & 3)
            if not (_int(self.tvalid) and _int(self.tready)):
                continue
            data, keep, user = int(self.tdata.value), int(self.tkeep.value), int(self.tuser.value)
            self._dwords += [data >> 32 * i & 0xFFFFFFFF for i in range(self.lanes) if keep >> i & 1]
            self._discs.append(user >> self.disc_bit & 1)
            if int(self.tlast.value):
                desc = unpack_descriptor(CQ_DESCRIPTOR, self._dwords[:CQ_DESCRIPTOR_DWORDS])
                self.packets.append((ReqType(desc["req_type"]), self._discs))
                self._dwords, self._discs = [], []


async def wait_until(clk, cond, cycles):
    for _ in range(cycles):
        if cond():
            return
        await RisingEdge(clk)
    raise AssertionError(f"condition not met in {cycles} cycles")


# Each test ends within 60 us of simulated time (the longest, at 64 bits, takes
# about 50): one that fails with completions held or reads waiting fails here,
# in simulated time, instead of leaving the rest of the module to hang.
LIMIT = {"timeout_time": 1, "timeout_unit": "ms"}


async def start(dut):
    tb = await Topology.create(dut)
    mon = CqMonitor(dut, tb.a, tb.params.data_width)
    await tb.start()
    tb.rc.tag_count = 256          # let every read of a burst be outstanding at once
    return tb, mon


def idle_credits(tb):
    """What the endpoint grants when idle: its NP queue's depth (hw/bar_endpoint.py)."""
    return min(tb.params.np_queue_depth, NP_CREDIT_LIMIT)


def requests_held(tb):
    """Most requests the endpoint takes in while CC is held: its NP queue,
    then the completer's jobs (READS_IN_FLIGHT completions, whose requests
    leave the queue and give their credit back) and the few in its pipeline
    (hw/core/completer.py)."""
    return idle_credits(tb) + ports.READS_IN_FLIGHT + 4


async def assert_credit_in_step(tb, mon, start_count, start_grants, start_np):
    """Once idle, the model holds exactly what the RTL granted minus what it
    delivered, and that is all the RTL may grant: no credit was lost."""
    ep = tb.a
    await ClockCycles(ep.clk, 100)
    model = ep.model
    want = start_count + (mon.grants - start_grants) - (mon.nonposted - start_np)
    assert model.cq_np_req_count == want, \
        f"model holds {model.cq_np_req_count} NP credits; granted minus delivered is {want}"
    assert model.cq_np_req_count == idle_credits(tb), \
        f"idle endpoint: model holds {model.cq_np_req_count} NP credits, RTL granted {idle_credits(tb)}"
    assert int(ep.model.pcie_cq_np_req_count.value) == model.cq_np_req_count
    assert model.cq_np_queue.empty()


@cocotb.test(**LIMIT)
async def test_np_credit_burst(dut):
    """Bursts of 64 reads (four NP queues' worth) while completions are held,
    then released, with 512-byte writes streaming past them all along; CQ
    pauses at random throughout, CC too after the release. Every read
    completes with the right data, every write lands, and no credit is lost.
    (cocotbext's stock model stalls here in the first round: it loses the
    grants made while it is blocked sending writes.)"""
    tb, mon = await start(dut)
    ep, model = tb.a, tb.a.model
    half = tb.params.mem_size // 2
    base = tb.rng.randrange(0, half - 64 * READS) & ~0xFFF
    data = tb.rng.randbytes(64 * READS)
    await ep.bar2.write(base, data)
    await ClockCycles(ep.clk, 100)
    assert model.cq_np_req_count == idle_credits(tb), model.cq_np_req_count
    c0, g0, n0 = model.cq_np_req_count, mon.grants, mon.nonposted
    for busy in (0.3, 0.6, 0.9):
        ep.pause(cq=random_pauses(tb.rng, busy))
        ep.hold_completions(True)
        order = list(range(READS))
        tb.rng.shuffle(order)
        reads = [(i, cocotb.start_soon(ep.bar2.read(base + 64 * i, 64))) for i in order]
        blobs = [tb.rng.randbytes(512) for _ in range(WRITES)]

        async def writer():
            for k, blob in enumerate(blobs):
                await ep.bar2.write(half + 512 * k, blob)
        writes = cocotb.start_soon(writer())
        # The endpoint takes what its NP queue holds; the rest waits in the model.
        await wait_until(ep.clk, lambda: model.cq_np_req_count == 0
                         and model.cq_np_queue.qsize() > 0, 20_000)
        await ClockCycles(ep.clk, 100)
        assert not any(r.done() for _, r in reads), "a read completed while CC was held"
        ep.hold_completions(False)
        ep.pause(cq=random_pauses(tb.rng, busy), cc=random_pauses(tb.rng, 0.3))
        for i, r in reads:
            got = await with_timeout(r, TIMEOUT_US, "us")
            assert got == data[64 * i:64 * i + 64], f"read {i} (CQ busy {busy}): wrong data"
        await with_timeout(writes, TIMEOUT_US, "us")
        assert await ep.bar2.read(half, 512 * WRITES) == b"".join(blobs), \
            f"writes (CQ busy {busy}) did not all land"
        ep.pause()
        await assert_credit_in_step(tb, mon, c0, g0, n0)
    tb.assert_clean()


def request(req_type, address, tag, data=b"", length=None, first_be=0xF, last_be=0):
    """A request as it arrives from the link (Tlp, as the switch would deliver it)."""
    high = address >= 1 << 32
    tlp = Tlp()
    tlp.fmt_type = {
        ReqType.MEM_FETCH_ADD: TlpType.FETCH_ADD_64 if high else TlpType.FETCH_ADD,
        ReqType.MEM_SWAP: TlpType.SWAP_64 if high else TlpType.SWAP,
        ReqType.MEM_CAS: TlpType.CAS_64 if high else TlpType.CAS,
        ReqType.MEM_READ_LOCKED: TlpType.MEM_READ_LOCKED_64 if high else TlpType.MEM_READ_LOCKED,
    }[req_type]
    tlp.requester_id = PcieId(0, 0, 0)
    tlp.tag = tag
    tlp.address = address
    tlp.length = length if length is not None else len(data) // 4
    tlp.first_be = first_be
    tlp.last_be = last_be
    if data:
        tlp.data = bytearray(data)
    return tlp


def atomic_cases(base):
    return [
        (ReqType.MEM_FETCH_ADD, dict(address=base, data=bytes(8), last_be=0xF)),
        (ReqType.MEM_SWAP, dict(address=base + 0x10, data=bytes(4))),
        (ReqType.MEM_CAS, dict(address=base + 0x20, data=bytes(16), last_be=0xF)),
        (ReqType.MEM_READ_LOCKED, dict(address=base + 0x30, length=2, first_be=0xE,
                                       last_be=0x7)),
    ]


async def send_requests(tb, ep, cases):
    """Deliver requests to `ep`'s hard IP from the link side; return their tags.
    (cocotbext's switch routes no atomics or locked reads, so they are handed
    to the model's link input, upstream_recv, directly.)"""
    tags = []
    for req_type, kw in cases:
        tag = await tb.rc.alloc_tag()
        tags.append(tag)
        await ep.model.upstream_recv(request(req_type, tag=tag, **kw))
    return tags


async def expect_ur(tb, cases, tags):
    for (req_type, _), tag in zip(cases, tags):
        cpl = await tb.rc.recv_cpl(tag, TIMEOUT_US, "us")
        tb.rc.release_tag(tag)
        assert cpl is not None, f"no completion for {req_type.name}"
        assert cpl.status == CplStatus.UR, f"{req_type.name}: status {cpl.status}"
        want = TlpType.CPL_LOCKED if req_type == ReqType.MEM_READ_LOCKED else TlpType.CPL
        assert cpl.fmt_type == want and cpl.length == 0, f"{req_type.name}: {cpl!r}"


@cocotb.test(**LIMIT)
async def test_atomics_need_credit(dut):
    """FetchAdd, Swap, CAS and a locked read reach CQ from the link and take
    non-posted credit: without credit they wait, in order, behind the reads
    queued before them while a write passes them all; with credit the
    endpoint answers each with UR (a locked read with CplLk)."""
    tb, mon = await start(dut)
    ep, model = tb.a, tb.a.model
    ur0 = await ep.read_reg("ERR_UR")
    c0, g0, n0 = model.cq_np_req_count, mon.grants, mon.nonposted
    cases = atomic_cases(ep.bar2_addr + 0x1000)

    # With credit: answered at once.
    await expect_ur(tb, cases, await send_requests(tb, ep, cases))

    # Without credit: they wait.
    ep.hold_completions(True)
    try:
        await atomics_wait(tb, mon, cases)
    finally:
        ep.hold_completions(False)      # a failure above leaves the link as it found it
    assert await ep.read_reg("ERR_UR") == ur0 + 2 * len(cases)
    await assert_credit_in_step(tb, mon, c0, g0, n0)
    tb.assert_clean()


async def atomics_wait(tb, mon, cases):
    """With completions held (the caller releases them), the atomics wait in
    order behind the reads, and a write passes them all."""
    ep, model = tb.a, tb.a.model
    reads = [cocotb.start_soon(ep.bar2.read(64 * i, 64)) for i in range(requests_held(tb) + 8)]
    await wait_until(ep.clk, lambda: model.cq_np_req_count == 0
                     and model.cq_np_queue.qsize() > 0, 20_000)
    await ClockCycles(ep.clk, 100)
    queued = model.cq_np_queue.qsize()
    seen = len(mon.packets)
    tags = await send_requests(tb, ep, cases)
    await ClockCycles(ep.clk, 400)
    assert model.cq_np_queue.qsize() == queued + len(cases)
    assert all(tb.rc.rx_cpl_queues[t].empty() for t in tags), "answered without credit"
    assert len(mon.packets) == seen, "a request reached CQ without credit"
    await ep.bar2.write(0x3000, b"\x5a" * 32)                   # posted: passes them
    await ClockCycles(ep.clk, 100)
    assert [t for t, _ in mon.packets[seen:]] == [ReqType.MEM_WRITE], mon.packets[seen:]

    ep.hold_completions(False)
    await expect_ur(tb, cases, tags)
    for r in reads:
        await with_timeout(r, TIMEOUT_US, "us")
    delivered = [t for t, _ in mon.packets[seen + 1:]]
    atomics = [t for t in delivered if t != ReqType.MEM_READ]
    assert atomics == [t for t, _ in cases], delivered
    assert delivered.index(cases[0][0]) == queued, \
        f"the atomics overtook queued reads: {delivered}"
    assert await ep.bar2.read(0x3000, 32) == b"\x5a" * 32


@cocotb.test(**LIMIT)
async def test_discontinue_last_beat(dut):
    """Discontinued writes of 1 to 256 dwords carry discontinue in their last
    beat only, and the endpoint still drops them whole (it ORs the bit over
    a packet's beats); no other packet carries it."""
    tb, mon = await start(dut)
    ep = tb.a
    await ep.bar2.write(0x400, bytes(0x400))
    await ep.write_reg("CTRL", 1)                    # clear the counters
    assert await ep.read_reg("ERR_POISONED_DROPPED") == 0
    first = len(mon.packets)
    sizes = (1, 16, 64, 256)
    for dw in sizes:
        await ep.model.cq_source.send(cq_request(
            ep, ReqType.MEM_WRITE, address=ep.bar2_addr + 0x400, dw_count=dw,
            last_be=0xF if dw > 1 else 0, data=b"\x77" * (4 * dw), discontinue=True))
    assert await ep.bar2.read(0x400, 0x400) == bytes(0x400)
    assert await ep.read_reg("ERR_POISONED_DROPPED") == len(sizes)
    assert await ep.read_reg("STAT_WRITES") == 0
    await ep.bar2.write(0x400, b"\x12" * 64)           # still served
    assert await ep.bar2.read(0x400, 64) == b"\x12" * 64
    writes = [i for i, (t, _) in enumerate(mon.packets) if i >= first and t == ReqType.MEM_WRITE]
    assert len(writes) == len(sizes) + 1, mon.packets[first:]
    discontinued = writes[:len(sizes)]
    for i in discontinued:
        discs = mon.packets[i][1]
        assert discs == [0] * (len(discs) - 1) + [1], f"discontinue per beat: {discs}"
    assert len(mon.packets[discontinued[-1]][1]) > 1, "no multi-beat packet was checked"
    wrong = [p for i, p in enumerate(mon.packets) if i not in discontinued and any(p[1])]
    assert not wrong, f"discontinue on packets that were not discontinued: {wrong[:3]}"
    tb.assert_clean()
