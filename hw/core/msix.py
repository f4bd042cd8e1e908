"""MSI-X: the table and Pending Bit Array live in BAR0, the hard IP sends.

The table (MSIX_VEC<v>_* in the register map, 16 bytes a vector, at
MSIX_TABLE_OFFSET) and the PBA (MSIX_PBA, at MSIX_PBA_OFFSET) are plain
registers of the endpoint's register file; this component holds the
pending bits and drives the hard IP's MSI-X interface (PG213, MSI-X
table outside the hard IP):

* An event on vector v sets its pending bit while MSI-X is enabled.
* A pending vector whose mask bit and the function's mask are clear is
  sent: `cfg_interrupt_msix_int` is pulsed for one cycle with the
  vector's address and data, and its pending bit clears. The next vector
  waits until the hard IP answers with `sent` or `fail`; on `fail` the
  pending bit is set again, to be retried.
* A masked vector keeps its pending bit (readable in the PBA) and is
  sent once unmasked, as the PCIe spec requires.
"""

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.spec import regmap


def msix_signature(vectors):
    return wiring.Signature({
        # Events: one vector a cycle.
        "event": In(1), "event_vector": In(range(vectors)),
        # The table, from the register file.
        "addr": In(64).array(vectors), "data": In(32).array(vectors),
        "masked": In(vectors),
        "pending": Out(vectors),
        # Hard IP (function 0).
        "cfg_enable": In(1), "cfg_mask": In(1),
        "cfg_int": Out(1), "cfg_address": Out(64), "cfg_data": Out(32),
        "cfg_sent": In(1), "cfg_fail": In(1),
        "sent_count": Out(32),
    })


class MsixSender(wiring.Component):
    def __init__(self, vectors=regmap.MSIX_VECTORS):
        self.vectors = vectors
        super().__init__(msix_signature(vectors))

    def elaborate(self, platform):
        m = Module()
        V = self.vectors
        pending = Signal(V)
        waiting = Signal()                 # a message is with the hard IP
        sending = Signal(range(V))

        ready = pending & ~self.masked & Mux(self.cfg_enable & ~self.cfg_mask, (1 << V) - 1, 0)
        pick = Signal(range(V))
        for v in reversed(range(V)):
            with m.If(ready[v]):
                m.d.comb += pick.eq(v)
        launch = ~waiting & (ready != 0)

        set_bits = Signal(V)
        clr_bits = Signal(V)
        with m.If(self.event & self.cfg_enable):
            m.d.comb += set_bits.eq(1 << self.event_vector)
        with m.If(launch):
            m.d.comb += clr_bits.eq(1 << pick)
        retry = Signal(V)
        with m.If(waiting & self.cfg_fail):
            m.d.comb += retry.eq(1 << sending)
        m.d.sync += pending.eq((pending & ~clr_bits) | set_bits | retry)

        with m.If(launch):
            m.d.sync += [
                waiting.eq(1), sending.eq(pick), self.cfg_int.eq(1),
                self.cfg_address.eq(Array(self.addr)[pick]),
                self.cfg_data.eq(Array(self.data)[pick]),
            ]
        with m.Else():
            m.d.sync += self.cfg_int.eq(0)
        with m.If(waiting & (self.cfg_sent | self.cfg_fail)):
            m.d.sync += waiting.eq(0)
        with m.If(waiting & self.cfg_sent):
            m.d.sync += self.sent_count.eq(self.sent_count + 1)
        m.d.comb += self.pending.eq(pending)
        return m
