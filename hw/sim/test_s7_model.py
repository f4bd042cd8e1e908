"""cocotb tests of the pcie_7x bus model (hw/sim/tb/s7_model.py), with Python
in place of the user logic.

The toplevel (tests/test_s7_model.py writes it) is only ports: endpoint A
with a 64-bit interface (a_*), endpoint B with a 128-bit one (b_*), every
port an input the model or the Python "user logic" (class User) drives.
Both sit behind one switch under the root complex, as in hw/sim/tb/topology.py.

User plays the application: it keeps BAR0 and BAR2 in bytearrays, answers
memory reads with completions split on the Read Completion Boundary, takes
the IDs, MPS, MRRS and RCB from the model's cfg_* outputs, and can write
and read host memory and send MSI-X messages itself, as the 7-series user
logic must. Random tready/tvalid gaps on both sides, and the model's rx_pause
and tx_backpressure hooks, vary the timing.
"""

import logging
import random
from collections import deque

import cocotb
from cocotb.triggers import ClockCycles, Event, RisingEdge, Timer, with_timeout
from cocotbext.pcie.core import RootComplex, Switch
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from hw.spec import s7_stream
from hw.sim.tb.s7_model import BENCH_WIDTHS, S7PcieDevice

BAR0_SIZE = 64 << 10
BAR2_SIZE = 1 << 20
MSIX_VECTORS = 4
MSIX_TABLE_OFFSET = 0x8000
MSIX_PBA_OFFSET = 0x9000


def first_byte_offset(first_be):
    return (first_be & -first_be).bit_length() - 1 if first_be else 0


class User:
    """The user application, in Python, on one model's ports."""

    def __init__(self, dut, prefix, width, rng, rx_ready=0.8, tx_gap=0.2):
        self.p = lambda name: getattr(dut, prefix + name)
        self.width = width
        self.rng = rng
        self.rx_ready = rx_ready
        self.tx_gap = tx_gap
        self.clk = self.p("user_clk")
        self.mem = {0: bytearray(BAR0_SIZE), 2: bytearray(BAR2_SIZE)}
        self.unpacker = s7_stream.RxUnpacker(width)
        self.np_ok = True
        self.rx_tlps = []               # (Tlp, bar_hit) of every TLP received
        self.straddled = 0
        self.unaligned = 0
        self.tx = deque()               # frames (lists of beats) to send
        self.cpl = {}                   # tag -> [completions]
        self.cpl_event = Event()
        self.free_tags = list(range(32))
        for name in ("m_axis_rx_tready", "s_axis_tx_tvalid", "s_axis_tx_tdata",
                     "s_axis_tx_tkeep", "s_axis_tx_tlast", "s_axis_tx_tuser"):
            self.p(name).value = 0
        self.p("rx_np_ok").value = 1
        cocotb.start_soon(self._run_rx())
        cocotb.start_soon(self._run_tx())

    # What the model's cfg_* outputs say.
    def cfg(self, name):
        return int(self.p(name).value)

    @property
    def my_id(self):
        return PcieId(self.cfg("cfg_bus_number"), self.cfg("cfg_device_number"),
                      self.cfg("cfg_function_number"))

    @property
    def mps(self):
        return 128 << (self.cfg("cfg_dcommand") >> 5 & 7)

    @property
    def mrrs(self):
        return 128 << (self.cfg("cfg_dcommand") >> 12 & 7)

    @property
    def rcb(self):
        return 128 if self.cfg("cfg_lcommand") & 8 else 64

    async def _run_rx(self):
        tready = 0
        while True:
            await RisingEdge(self.clk)
            if tready and int(self.p("m_axis_rx_tvalid").value):
                beat = tuple(int(self.p(n).value) for n in (
                    "m_axis_rx_tdata", "m_axis_rx_tkeep", "m_axis_rx_tlast", "m_axis_rx_tuser"))
                sof, eof = s7_stream.sof_field(beat[3]), s7_stream.eof_field(beat[3])
                if sof == 8:
                    if eof is not None:
                        self.straddled += 1
                    else:
                        self.unaligned += 1
                for raw, hit in self.unpacker.feed(beat):
                    self._received(Tlp.unpack(raw), hit)
            tready = int(self.rng.random() < self.rx_ready)
            self.p("m_axis_rx_tready").value = tready
            self.p("rx_np_ok").value = int(self.np_ok)

    def _received(self, tlp, hit):
        self.rx_tlps.append((tlp, hit))
        kind = tlp.fmt_type
        if kind in (TlpType.CPL, TlpType.CPL_DATA):
            self.cpl.setdefault(tlp.tag, []).append(tlp)
            self.cpl_event.set()
            return
        bar = hit.bit_length() - 1
        assert hit == 1 << bar and bar in self.mem, f"bar_hit {hit:#x}"
        mem = self.mem[bar]
        offset = tlp.address & (len(mem) - 1)
        if kind in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64):
            first = first_byte_offset(tlp.first_be)
            last = 4 - ((tlp.last_be if tlp.length > 1 else tlp.first_be) & 0xF).bit_length()
            data = tlp.get_data()
            mem[offset + first:offset + len(data) - last] = data[first:len(data) - last]
        elif kind in (TlpType.MEM_READ, TlpType.MEM_READ_64):
            self._complete(tlp, mem[offset:offset + 4 * tlp.length])
        else:
            raise AssertionError(f"unexpected TLP on m_axis_rx: {tlp!r}")

    def _complete(self, req, data):
        """Completions for a read, split on the RCB when over MPS."""
        first = first_byte_offset(req.first_be)
        addr = req.address + first
        if req.length == 1:
            remaining = 1 if req.first_be == 0 else (req.first_be & 0xF).bit_length() - first
        else:
            remaining = 4 * req.length - first - (4 - (req.last_be & 0xF).bit_length())
        dw, max_dw, rcb = 0, self.mps // 4, self.rcb
        while dw < req.length:
            n = req.length - dw
            if n > max_dw:
                n = max_dw - (((addr & ~3) & (rcb - 1)) >> 2)
            cpl = Tlp.create_completion_data_for_tlp(req, self.my_id)
            cpl.byte_count = remaining
            cpl.lower_address = addr & 0x7F
            cpl.set_data(data[4 * dw:4 * (dw + n)])
            self.send(cpl)
            carried = 4 * n - (addr & 3)
            dw, remaining, addr = dw + n, remaining - carried, addr + carried

    def send(self, tlp, user=0):
        self.send_frame(s7_stream.to_beats(bytes(tlp.pack()), self.width), user)

    def send_frame(self, beats, user=0):
        self.tx.append([(d, k, l, user) for d, k, l, _ in beats])

    async def _run_tx(self):
        beat, frame = None, None
        while True:
            await RisingEdge(self.clk)
            if beat is not None and int(self.p("s_axis_tx_tready").value):
                beat = None
            if beat is None:
                if frame is None and self.tx:
                    frame = deque(self.tx.popleft())
                if frame and self.rng.random() >= self.tx_gap:
                    beat = frame.popleft()
                    if not frame:
                        frame = None
                if beat is None:
                    self.p("s_axis_tx_tvalid").value = 0
                else:
                    for name, v in zip(("s_axis_tx_tdata", "s_axis_tx_tkeep",
                                        "s_axis_tx_tlast", "s_axis_tx_tuser"), beat):
                        self.p(name).value = v
                    self.p("s_axis_tx_tvalid").value = 1

    async def tx_idle(self):
        while self.tx:
            await RisingEdge(self.clk)
        await ClockCycles(self.clk, 10)

    # The user logic as a requester.
    def write(self, addr, data):
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, self.mps - ((addr + pos) & 3),
                    0x1000 - ((addr + pos) & 0xFFF))
            t = Tlp()
            t.fmt_type = TlpType.MEM_WRITE_64 if (addr + pos) >> 32 else TlpType.MEM_WRITE
            t.requester_id = self.my_id
            t.set_addr_be_data(addr + pos, data[pos:pos + n])
            self.send(t)
            pos += n

    async def read(self, addr, length):
        out = bytearray()
        while len(out) < length:
            n = min(length - len(out), self.mrrs - ((addr + len(out)) & 3),
                    0x1000 - ((addr + len(out)) & 0xFFF))
            t = Tlp()
            t.fmt_type = TlpType.MEM_READ_64 if (addr + len(out)) >> 32 else TlpType.MEM_READ
            t.requester_id = self.my_id
            t.set_addr_be(addr + len(out), n)
            t.tag = self.free_tags.pop(0)
            self.send(t)
            got = 0
            while got < n:
                while not self.cpl.get(t.tag):
                    self.cpl_event.clear()
                    await self.cpl_event.wait()
                cpl = self.cpl[t.tag].pop(0)
                assert cpl.status == CplStatus.SC, f"read completion {cpl!r}"
                skip = cpl.lower_address & 3
                data = cpl.get_data()[skip:skip + cpl.byte_count]
                out += data
                got += len(data)
            del self.cpl[t.tag]
            self.free_tags.append(t.tag)
        return bytes(out)

    def msix(self, vector):
        entry = self.mem[0][MSIX_TABLE_OFFSET + 16 * vector:][:16]
        addr = int.from_bytes(entry[0:8], "little")
        self.write(addr, entry[8:12])


class Bench:
    def __init__(self, dut, seed=1):
        self.rng = random.Random(seed)
        logging.getLogger("cocotb.pcie").setLevel(logging.ERROR)   # enumeration probes
        self.rc = RootComplex()
        self.rc.max_payload_size = 1               # 256 bytes: completions get split
        self.rc.max_read_request_size = 2          # 512 bytes
        self.switch = Switch()
        self.rc.make_port().connect(self.switch)
        self.devs, self.users = {}, {}
        for prefix, width in BENCH_WIDTHS.items():
            rng = random.Random(self.rng.random())
            kwargs = {}
            if width == 128:        # timing variety on B, from the model's hooks
                kwargs = dict(rx_pause=(rng.random() < 0.1 for _ in iter(int, 1)),
                              tx_backpressure=lambda: rng.random() < 0.2,
                              rx_unaligned_start=lambda: rng.random() < 0.1)
            dev = S7PcieDevice(dut, prefix, max_payload_size=512,
                               msix_table_size=MSIX_VECTORS - 1, msix_table_bir=0,
                               msix_table_offset=MSIX_TABLE_OFFSET, msix_pba_bir=0,
                               msix_pba_offset=MSIX_PBA_OFFSET, **kwargs)
            dev.functions[0].configure_bar(0, BAR0_SIZE)
            dev.functions[0].configure_bar(2, BAR2_SIZE, ext=True, prefetch=True)
            self.switch.make_port().connect(dev)
            self.devs[prefix] = dev
            self.users[prefix] = User(dut, prefix, width, rng)
        self.pci = {}

    async def start(self):
        await Timer(200, "ns")
        for prefix, dev in self.devs.items():
            assert int(dev.user_reset.value) == 0 and int(dev.user_lnk_up.value) == 1
        await self.rc.enumerate()
        for prefix, dev in self.devs.items():
            pci = self.rc.find_device(dev.functions[0].pcie_id)
            await pci.enable_device()
            await pci.set_master()
            self.pci[prefix] = pci
        await Timer(100, "ns")


@cocotb.test()
async def test_model(dut):
    tb = Bench(dut)
    await tb.start()
    for prefix, dev in tb.devs.items():
        user, pci, f = tb.users[prefix], tb.pci[prefix], dev.functions[0]
        width = BENCH_WIDTHS[prefix]
        what = f"{width}-bit"

        # cfg_* outputs follow the configuration space.
        assert user.cfg("cfg_command") & 0b110 == 0b110, what
        assert user.my_id == f.pcie_id and f.pcie_id.bus != 0, what
        assert user.mps == 256 and user.mrrs == 512 and user.rcb == 64, what
        assert user.cfg("cfg_interrupt_msixenable") == 0, what

        # Host writes and reads both BARs, concurrently.
        async def host_rw(bar, offset, length):
            data = bytes(tb.rng.randrange(256) for _ in range(length))
            await pci.bar_window[bar].write(offset, data)
            got = await pci.bar_window[bar].read(offset, length)
            assert got == data, f"{what} BAR{bar} {offset:#x}+{length}"
            assert user.mem[bar][offset:offset + length] == data

        tasks = []
        for i in range(40):
            bar = i % 2 * 2                 # BAR0 below its MSI-X table, BAR2
            length = tb.rng.choice([1, 3, 4, 8, 12, 60, 100, 257, 900])
            offset = 0x400 * (i // 2) + tb.rng.randrange(64)
            assert offset + length <= (MSIX_TABLE_OFFSET if bar == 0 else BAR2_SIZE)
            tasks.append(cocotb.start_soon(host_rw(bar, offset, length)))
        for t in tasks:
            await with_timeout(t, 200, "us")
        hits = {hit for _, hit in user.rx_tlps}
        assert hits == {1 << 0, 1 << 2}, f"{what}: bar_hit {hits}"
        if width == 128:
            assert user.straddled > 0, "no straddled beat at 128 bits"
            assert user.unaligned > 0, "no TLP started at byte 8 from idle"

        # rx_np_ok low: a read waits, writes pass it; the read completes once it rises.
        user.np_ok = False
        user.rx_ready = 1.0
        await ClockCycles(user.clk, 5)
        seen = len(user.rx_tlps)
        read = cocotb.start_soon(pci.bar_window[2].read(0x40, 16))
        await Timer(500, "ns")
        await pci.bar_window[2].write(0x80, b"posted")
        await Timer(500, "ns")
        kinds = [t.fmt_type for t, _ in user.rx_tlps[seen:]]
        assert len(kinds) == 1 and kinds[0] in (TlpType.MEM_WRITE, TlpType.MEM_WRITE_64), \
            f"{what}: while rx_np_ok was low {kinds}"
        user.np_ok = True
        assert await with_timeout(read, 10, "us") == bytes(user.mem[2][0x40:0x50])
        # With rx_np_ok_slack=2, two more start after rx_np_ok falls, as the IP may.
        user.np_ok = False
        await ClockCycles(user.clk, 5)
        dev.rx_np_ok_slack = 2
        seen = len(user.rx_tlps)
        reads = [cocotb.start_soon(pci.bar_window[2].read(0x100 * i, 8)) for i in range(4)]
        await Timer(1000, "ns")
        kinds = [t.fmt_type for t, _ in user.rx_tlps[seen:]]
        assert len(kinds) == 2 and kinds[0] in (TlpType.MEM_READ, TlpType.MEM_READ_64), \
            f"{what}: with slack 2 {kinds}"
        user.np_ok = True
        for i, r in enumerate(reads):
            assert await with_timeout(r, 10, "us") == bytes(user.mem[2][0x100 * i:][:8])
        dev.rx_np_ok_slack = 0
        assert dev.reads_outstanding == 0
        user.rx_ready = 0.8

        # The user logic writes and reads host memory (DMA), under and over 4 GiB.
        host = tb.rc.mem_pool.alloc_region(1 << 16)
        base = host.get_absolute_address(0)
        data = bytes(tb.rng.randrange(256) for _ in range(3000))
        user.write(base + 5, data)
        await user.tx_idle()
        await Timer(2, "us")
        assert bytes(host[5:5 + len(data)]) == data, f"{what}: {dev.tx_errors}"
        assert await with_timeout(user.read(base + 5, len(data)), 50, "us") == data, what

        # MSI-X: the message is a memory write from the user logic.
        assert await pci.alloc_irq_vectors(MSIX_VECTORS, MSIX_VECTORS) == MSIX_VECTORS
        await ClockCycles(user.clk, 4)
        assert user.cfg("cfg_interrupt_msixenable") == 1, what
        fired = []
        for v in range(MSIX_VECTORS):
            async def handler(v=v):
                fired.append(v)
            pci.request_irq(v, handler)
        for v in (2, 0, 3):
            user.msix(v)
            await user.tx_idle()
            await Timer(1, "us")
        assert fired == [2, 0, 3], f"{what}: MSI-X {fired}"
        assert dev.tx_errors == [], dev.tx_errors

        # The model's checks of what the user logic sends.
        host = tb.rc.mem_pool.alloc_region(4096)
        base = host.get_absolute_address(0)
        assert base < 1 << 32
        me = user.my_id
        before = dev.tx_discontinued

        def mwr(addr, data, kind=None, rid=me):
            t = Tlp()
            t.fmt_type = kind or (TlpType.MEM_WRITE_64 if addr >> 32 else TlpType.MEM_WRITE)
            t.requester_id = rid
            t.set_addr_be_data(addr, data)
            return t

        bad = []
        bad.append(("4-DW header", mwr(base, b"\x11" * 4, TlpType.MEM_WRITE_64)))
        bad.append(("requester ID", mwr(base, b"\x22" * 4, rid=PcieId(me.bus, 1, 0))))
        cpl = Tlp.create_completion_data_for_tlp(mwr(0, b"1234"), me)
        cpl.tag, cpl.byte_count = 7, 4
        cpl.set_data(b"1234")
        bad.append(("no such read", cpl))
        cpl = Tlp.create_completion_data_for_tlp(mwr(0, b"1234"), PcieId(me.bus, 0, 1))
        cpl.byte_count = 4
        cpl.set_data(b"1234")
        bad.append(("completer ID", cpl))
        bad.append(("Max Payload Size", mwr(base, bytes(512))))
        for name, t in bad:
            user.send(t)
        # Length field 2, one payload DW.
        raw = bytearray(mwr(base, b"\x33" * 8).pack()[:-4])
        user.send_frame(s7_stream.to_beats(bytes(raw), width))
        # A tkeep hole before tlast.
        beats = s7_stream.to_beats(bytes(mwr(base, b"\x44" * 32).pack()), width)
        beats[0] = (beats[0][0], beats[0][1] >> 4, 0, 0)
        user.send_frame(beats)
        # Discontinued: dropped without an error.
        user.send(mwr(base, b"\x55" * 4), user=1 << 3)
        await user.tx_idle()
        await Timer(1, "us")
        errors = list(dev.tx_errors)
        expect = ["4-DW header", "requester ID", "no such read", "completer ID",
                  "Max Payload Size", "header says", "tkeep"]
        # One error each, and two for the completion with the wrong completer ID
        # (it answers no read either).
        assert len(errors) == len(expect) + 1, errors
        for word in expect:
            assert any(word in e for e in errors), f"{what}: no error about {word}: {errors}"
        assert dev.tx_discontinued == before + 1
        assert bytes(host[0:64]) == bytes(64), f"{what}: a bad TLP reached the host"
        dev.tx_errors.clear()
