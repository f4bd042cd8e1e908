"""External memory for builds with memory="axi": the endpoint's m_axi_*
port against a DRAM-like model, in the cocotb benches.

    MemoryModel(latency=150, busy=0.2)

* Memory: cocotbext-axi's AxiRam (AXI4 protocol, bursts, strobes), with
  its pause generators holding ready and valid low at random (`busy`).
* Latency: AxiDelay, in the simulated gateware between the endpoint and
  the model, holds each read request and each write response `latency`
  cycles, pipelined as a DRAM controller's are, so reads stream at full
  rate once the first data is back. (AxiRam answers a burst at a time,
  without delay.)
"""

import dataclasses
import random

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import axi


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    latency: int = 0            # cycles added to every read request and write response
    busy: float = 0.0           # probability that the model holds a ready or valid low
    seed: int = 1

    def env(self):
        return {"P2P_DAX_MEMORY": ",".join(f"{k}={v}" for k, v in
                                           dataclasses.asdict(self).items())}

    @classmethod
    def from_env(cls, value):
        fields = {f.name: f.type for f in dataclasses.fields(cls)}
        kw = dict(item.split("=") for item in value.split(",")) if value else {}
        return cls(**{k: (float(v) if fields[k] in ("float", float) else int(v))
                      for k, v in kw.items()})


class AxiDelay(wiring.Component):
    """AR requests and B responses held `latency` cycles on their way (a
    queue of `depth`, each entry stamped); AW, W and R pass straight."""

    def __init__(self, addr_width, data_width, id_width, latency, depth=64):
        self.latency, self.depth = latency, depth
        sig = axi.axi_signature(addr_width, data_width, id_width)
        super().__init__({"m": In(sig), "s": Out(sig)})

    def elaborate(self, platform):
        m = Module()
        now = Signal(20)
        m.d.sync += now.eq(now + 1)
        a, s = self.m, self.s
        for ch in ("aw", "w"):
            for name in axi.axi_write_signature(1, 8, 1).members:
                if name.startswith(ch):
                    self._pass(m, name, a, s)
        for name in ("rvalid", "rready", "rdata", "rresp", "rlast", "rid"):
            self._pass(m, name, a, s)
        self._delayed(m, now, "ar", (a.araddr, a.arlen, a.arsize, a.arburst, a.arid),
                      (s.araddr, s.arlen, s.arsize, s.arburst, s.arid), a, s)
        self._delayed(m, now, "b", (s.bid, s.bresp), (a.bid, a.bresp), s, a)
        return m

    def _pass(self, m, name, a, s):
        flow = a.signature.members[name].flow      # In: the master drives it
        src, dst = (getattr(a, name), getattr(s, name))
        m.d.comb += dst.eq(src) if flow == In else src.eq(dst)

    def _delayed(self, m, now, ch, fields_in, fields_out, src, dst):
        """Channel `ch` from `src` to `dst`, each item after `latency` cycles."""
        width = sum(len(f) for f in fields_in) + len(now)
        q = SyncFIFO(width=width, depth=self.depth)
        m.submodules[f"{ch}_delay"] = q
        valid, ready = f"{ch}valid", f"{ch}ready"
        stamp = q.r_data[-len(now):]
        due = q.r_rdy & ((now - stamp)[:len(now)] >= self.latency)
        m.d.comb += [
            q.w_en.eq(getattr(src, valid)), q.w_data.eq(Cat(*fields_in, now)),
            getattr(src, ready).eq(q.w_rdy),
            getattr(dst, valid).eq(due), q.r_en.eq(due & getattr(dst, ready)),
            Cat(*fields_out).eq(q.r_data[:-len(now)]),
        ]


def _pauses(rng, busy):
    while True:
        yield int(rng.random() < busy)


def attach(dut, prefix, clock, reset, size, model):
    """An AxiRam of `size` bytes on the ports named `prefix`_* (e.g.
    a_m_axi_awvalid), paused at random as `model` says."""
    from cocotbext.axi import AxiBus, AxiRam

    ram = AxiRam(AxiBus.from_prefix(dut, prefix), clock, reset, size=size)
    if model.busy:
        rng = random.Random(model.seed)
        for channel in (ram.write_if.aw_channel, ram.write_if.w_channel,
                        ram.write_if.b_channel, ram.read_if.ar_channel,
                        ram.read_if.r_channel):
            channel.set_pause_generator(_pauses(random.Random(rng.random()), model.busy))
    return ram

