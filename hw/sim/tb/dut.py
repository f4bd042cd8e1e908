"""The simulation toplevel: two endpoints, each in its own clock domain.

Every port of endpoint A is exposed as ``a_<port>`` (``a_s_axis_cq_tdata``
...), endpoint B's as ``b_<port>``, with clocks and resets ``a_clk``,
``a_rst``, ``b_clk``, ``b_rst``: each hard-IP model drives the clock and
reset of its own endpoint, as two boards in one machine would have.

With ``hard_ip="s7"`` the ports are pcie_7x's (``a_m_axis_rx_tdata`` ...,
hw/phy/s7.py), and the endpoint's own UltraScale+ interface behind the shim is
exposed too, as outputs under the same names as above, so the interface
checkers watch the same signals on both families.

With ``memory="axi"`` each endpoint's memory port is exposed as
``a_m_axi_*`` / ``b_m_axi_*`` behind an AxiDelay (hw/sim/tb/memory.py),
for the bench's memory model.
"""

from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.lib import wiring

from hw.params import EndpointParams
from hw.bar_endpoint import BarEndpoint, endpoint_signature, memory_port_signature
from hw.core import axi, ports
from hw.sim.tb.memory import AxiDelay, MemoryModel

TOPLEVEL = "p2p_dax_tb"
INSTANCES = ("a", "b")


class DualEndpoint(wiring.Component):
    def __init__(self, params=EndpointParams(), memory=MemoryModel()):
        from hw.phy.s7 import s7_signature
        self.params = params.validate()
        self.memory = memory
        inner = endpoint_signature(params).members
        members = {}
        for inst in INSTANCES:
            members[f"{inst}_clk"] = wiring.In(1)
            members[f"{inst}_rst"] = wiring.In(1)
            if params.hard_ip == "s7":
                for name, member in s7_signature(params.data_width).members.items():
                    members[f"{inst}_{name}"] = member
                for name, member in inner.items():        # taps, for the checkers
                    members[f"{inst}_{name}"] = wiring.Out(member.shape)
            else:
                for name, member in inner.items():
                    members[f"{inst}_{name}"] = member
            if params.memory == "axi":
                for name, member in memory_port_signature(params).members.items():
                    members[f"{inst}_{name}"] = member
        super().__init__(wiring.Signature(members))

    def _outer(self, m, inst, sub, signature):
        for name, member in signature.members.items():
            outer, inner = getattr(self, f"{inst}_{name}"), getattr(sub, name)
            if member.flow == wiring.In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)

    def _memory(self, m, inst, ep):
        """The endpoint's memory port out through a delay line (as a_m_axi_*)."""
        p = self.params
        delay = AxiDelay(ports.memory_addr_bits(p), p.data_width, ports.MEMORY_ID_BITS,
                         self.memory.latency)
        m.submodules[f"mem_delay_{inst}"] = DomainRenamer(inst)(delay)
        axi.join_named(m, ep, delay.m, master_prefix="m_axi_")
        axi.join_named(m, delay.s, self, slave_prefix=f"{inst}_m_axi_")

    def elaborate(self, platform):
        from hw.phy.s7 import S7Shim
        from hw.top import join_shim
        m = Module()
        for inst in INSTANCES:
            cd = ClockDomain(inst)
            m.domains += cd
            m.d.comb += [cd.clk.eq(getattr(self, f"{inst}_clk")),
                         cd.rst.eq(getattr(self, f"{inst}_rst"))]
            ep = BarEndpoint(self.params)
            m.submodules[f"ep_{inst}"] = DomainRenamer(inst)(ep)
            if self.params.memory == "axi":
                self._memory(m, inst, ep)
            hip = endpoint_signature(self.params)
            if self.params.hard_ip != "s7":
                self._outer(m, inst, ep, hip)
                continue
            shim = S7Shim(self.params)
            m.submodules[f"shim_{inst}"] = DomainRenamer(inst)(shim)
            join_shim(m, ep, shim)
            self._outer(m, inst, shim.s7, shim.s7.signature)
            for name in hip.members:
                m.d.comb += getattr(self, f"{inst}_{name}").eq(getattr(ep, name))
        return m


def generate_verilog(params=EndpointParams(), memory=MemoryModel()):
    from amaranth.back import verilog
    return verilog.convert(DualEndpoint(params, memory), name=TOPLEVEL, emit_src=False)
