"""The simulation toplevel: two endpoints, each in its own clock domain.

Every port of endpoint A is exposed as ``a_<port>`` (``a_s_axis_cq_tdata``
...), endpoint B's as ``b_<port>``, with clocks and resets ``a_clk``,
``a_rst``, ``b_clk``, ``b_rst``: each hard-IP model drives the clock and
reset of its own endpoint, as two boards in one machine would have.
"""

from amaranth.hdl import ClockDomain, DomainRenamer, Module
from amaranth.lib import wiring

from ..bar_endpoint import BarEndpoint, EndpointParams, endpoint_signature

TOPLEVEL = "p2p_dax_tb"
INSTANCES = ("a", "b")


class DualEndpoint(wiring.Component):
    def __init__(self, params=EndpointParams()):
        self.params = params.validate()
        inner = endpoint_signature(params).members
        members = {}
        for inst in INSTANCES:
            members[f"{inst}_clk"] = wiring.In(1)
            members[f"{inst}_rst"] = wiring.In(1)
            for name, member in inner.items():
                members[f"{inst}_{name}"] = member
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        for inst in INSTANCES:
            cd = ClockDomain(inst)
            m.domains += cd
            m.d.comb += [cd.clk.eq(getattr(self, f"{inst}_clk")),
                         cd.rst.eq(getattr(self, f"{inst}_rst"))]
            ep = BarEndpoint(self.params)
            m.submodules[f"ep_{inst}"] = DomainRenamer(inst)(ep)
            for name, member in ep.signature.members.items():
                outer = getattr(self, f"{inst}_{name}")
                inner = getattr(ep, name)
                if member.flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m


def generate_verilog(params=EndpointParams()):
    from amaranth.back import verilog
    return verilog.convert(DualEndpoint(params), name=TOPLEVEL, emit_src=False)
