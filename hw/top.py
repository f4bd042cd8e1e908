"""The endpoint as a top module, for the hard IP it is built for: BarEndpoint
itself in front of UltraScale+ (its native interface), or behind the
7-series shim. `make verilog` writes it (`python -m hw.top -o FILE`)."""

import argparse

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring

from hw.bar_endpoint import BarEndpoint, memory_port_signature
from hw.core import axi
from hw.params import EndpointParams
from hw.phy.s7 import S7Shim, s7_signature


def join_shim(m, ep, shim):
    """The endpoint's hard-IP ports to the shim's UltraScale+ side (the
    endpoint may have memory ports besides)."""
    axi.join(m, shim.usp, ep)


class S7Endpoint(wiring.Component):
    """The endpoint behind the shim: its ports are pcie_7x's user side (and
    m_axi_* with memory="axi")."""

    def __init__(self, params):
        self.p = params.validate()
        members = dict(s7_signature(params.data_width).members)
        if self.p.memory == "axi":
            members.update(memory_port_signature(self.p).members)
        super().__init__(wiring.Signature(members))

    def elaborate(self, platform):
        m = Module()
        m.submodules.endpoint = ep = BarEndpoint(self.p)
        m.submodules.shim = shim = S7Shim(self.p)
        join_shim(m, ep, shim)
        axi.join(m, wiring.flipped(self), shim.s7)
        if self.p.memory == "axi":
            axi.join_named(m, ep, self, master_prefix="m_axi_", slave_prefix="m_axi_")
        return m


def toplevel(params):
    """The endpoint's top component for params.hard_ip."""
    return S7Endpoint(params) if params.hard_ip == "s7" else BarEndpoint(params)


def generate_verilog(params=EndpointParams(), name="p2p_dax_endpoint"):
    """Verilog text of the endpoint as a standalone top module: with
    hard_ip="s7", behind the 7-series shim (ports: pcie_7x's user side)."""
    return verilog.convert(toplevel(params), name=name, emit_src=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write the endpoint as a Verilog top module.")
    ap.add_argument("-o", "--output", required=True, help="Verilog file to write")
    ap.add_argument("--data-width", type=int, default=EndpointParams.data_width,
                    choices=(64, 128, 256, 512))
    ap.add_argument("--bar2-size", type=lambda s: int(s, 0), default=EndpointParams.bar2_size)
    ap.add_argument("--mem-size", type=lambda s: int(s, 0), default=EndpointParams.mem_size)
    ap.add_argument("--name", default="p2p_dax_endpoint")
    args = ap.parse_args(argv)
    try:
        params = EndpointParams(data_width=args.data_width, bar2_size=args.bar2_size,
                                mem_size=args.mem_size).validate()
    except ValueError as e:
        ap.error(str(e))
    with open(args.output, "w") as f:
        f.write(generate_verilog(params, args.name))


if __name__ == "__main__":
    main()
