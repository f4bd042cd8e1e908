"""What the endpoint's BARs hold: BAR2's memory banks, BAR0's register
file, and the event counters among its registers.

BAR2's memory is block RAM as wide as the bus behind an AXI4 slave
(hw/core/axi.py), a beat a cycle each way. The register file is N =
width/32 dword-wide banks (hw/core/ports.py), written by the dispatcher
and read by the completer a beat a cycle.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.core import axi, ports
from hw.spec import regmap


class MemoryBanks(wiring.Component):
    """BAR2's block RAM: mem_size bytes behind an AXI4 port addressed by
    BAR offset (a BAR larger than the memory mirrors it)."""

    def __init__(self, p, id_width=ports.MEMORY_ID_BITS):
        self.p = p
        self.id_width = id_width
        super().__init__({
            "axi": In(axi.axi_signature(ports.memory_addr_bits(p), p.data_width, id_width)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        rows = p.mem_size // (p.data_width // 8)
        row_bits = ports.log2(rows)
        args = (ports.memory_addr_bits(p), p.data_width, self.id_width, row_bits)
        m.submodules.writes = w = axi.AxiBankWrites(*args)
        m.submodules.reads = r = axi.AxiBankReads(*args)
        axi.join(m, wiring.flipped(self.axi), w.axi)
        axi.join(m, wiring.flipped(self.axi), r.axi)
        m.submodules.mem = mem = Memory(shape=unsigned(p.data_width), depth=rows, init=[])
        wp = mem.write_port(granularity=8)
        rp = mem.read_port(domain="sync")
        m.d.comb += [
            wp.addr.eq(w.bank_row), wp.data.eq(w.bank_data),
            wp.en.eq(Mux(w.bank_en, w.bank_be, 0)),
            rp.addr.eq(r.bank_row), r.bank_data.eq(rp.data),
        ]
        return m


# Registers whose writes are strobes, and the strobe each drives.
STROBES = {"CTRL": "clear_counters", "DMA_SUBMIT": "submit", "DMA_ABORT": "abort"}


def register_file_members(constants):
    """(storage, sources): the registers the file stores (their values leave
    as outputs) and those whose values come in from other blocks; the
    others are `constants` or write-only (read as 0)."""
    storage = [r for r in regmap.REGISTERS
               if r.access == regmap.Access.RW and r.name not in STROBES]
    sources = [r for r in regmap.REGISTERS
               if r not in storage and r.name not in constants
               and r.access != regmap.Access.WO]
    return storage, sources


class RegisterFile(wiring.Component):
    """BAR0's registers: one Out(32) per stored register and one In(32) per
    register another block supplies, named after the register in lower
    case, and a strobe per entry of STROBES. `constants` maps the names of
    the registers that never change to their values."""

    def __init__(self, p, constants):
        self.p = p
        self.constants = constants
        self.storage, self.sources = register_file_members(constants)
        super().__init__({
            "write": In(ports.bank_write_signature(p)),
            "read": In(ports.bank_read_signature(p)),
            **{r.name.lower(): Out(32, init=r.reset) for r in self.storage},
            **{r.name.lower(): In(32) for r in self.sources},
            **{strobe: Out(1) for strobe in STROBES.values()},
        })

    def value(self, reg):
        """What a read of `reg` returns."""
        if reg.name in self.constants:
            return Const(self.constants[reg.name], 32)
        if reg in self.storage:
            return getattr(self, reg.name.lower()) & reg.writable
        if reg in self.sources:
            return getattr(self, reg.name.lower())
        return Const(0, 32)                     # write-only

    def elaborate(self, platform):
        m = Module()
        n = self.p.lanes
        row_bits = ports.log2(self.p.bar0_size // 4) - ports.log2(n)
        rdata = []
        for b in range(n):
            regs = [r for r in regmap.REGISTERS if (r.offset // 4) % n == b]
            rdata.append(self._read_bank(m, b, regs, self.read.row[b][:row_bits]))
            self._write_bank(m, b, regs, self.write.row[b][:row_bits])
        m.d.comb += self.read.data.eq(Cat(*rdata))
        return m

    def _read_bank(self, m, b, regs, row):
        rdata = Signal(32, name=f"rdata{b}")
        with m.Switch(row):
            for r in regs:
                with m.Case(r.offset // 4 // self.p.lanes):
                    m.d.sync += rdata.eq(self.value(r))
            with m.Default():
                m.d.sync += rdata.eq(0)
        return rdata

    def _write_bank(self, m, b, regs, row):
        w = self.write
        be = Mux(w.en & w.bar0, w.be.word_select(b, 4), 0)
        wdata = w.data.word_select(b, 32)
        for r in regs:
            hit = row == r.offset // 4 // self.p.lanes
            if r in self.storage:
                reg = getattr(self, r.name.lower())
                for byte in range(4):
                    with m.If(hit & be[byte]):
                        m.d.sync += reg[byte * 8:byte * 8 + 8].eq(wdata[byte * 8:byte * 8 + 8])
            elif r.name == "CTRL":
                clear = r.field("clear_counters")
                m.d.comb += self.clear_counters.eq(hit & be[clear.lsb // 8] & wdata[clear.lsb])
            elif r.name in STROBES:
                m.d.comb += getattr(self, STROBES[r.name]).eq(hit & (be != 0))


class EventCounters(wiring.Component):
    """The error and statistics counters: each counts its `inc` pulses,
    saturating at 2^32 - 1, until `clear`."""

    def __init__(self, names=regmap.COUNTERS):
        self.names = [name.lower() for name in names]
        super().__init__({
            "inc": In(ports.counter_events_layout(names)),
            "clear": In(1),
            **{name: Out(32) for name in self.names},
        })

    def elaborate(self, platform):
        m = Module()
        for name in self.names:
            count = getattr(self, name)
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Elif(self.inc[name] & (count != 0xFFFFFFFF)):
                m.d.sync += count.eq(count + 1)
        return m
