"""The checkers as cocotb sees them: each samples a DUT's buses on every
rising clock edge and feeds a monitor (monitors.py).

    InterfaceChecker        CQ and CC, feeding a CompleterMonitor
    RequesterChecker        RQ and RC, feeding a RequesterMonitor

cocotb is imported only inside the classes, so the rest of the package runs
without it.
"""

from hw.sim.tb.checker.monitors import Beat, CompleterMonitor, RequesterMonitor
from hw.spec.usp import mps_bytes

# ---------------------------------------------------------------------------
# Part 3: the cocotb side
# ---------------------------------------------------------------------------

def _read(handle):
    """A signal's value as (int, mask of X/Z bits), X/Z bits reading as 0."""
    bits = str(handle.value)     # str() is much faster than LogicArray.is_resolvable
    try:
        return int(bits, 2), 0
    except ValueError:
        known = "".join(b if b in "01" else "0" for b in bits)
        unknown = "".join("0" if b in "01" else "1" for b in bits)
        return int(known, 2), int(unknown, 2)


class _StreamPort:
    """The AXI4-Stream signals of one bus of the DUT, e.g. m_axis_cc_*."""

    PAYLOAD = ("tdata", "tkeep", "tlast", "tuser")

    def __init__(self, dut, prefix):
        self.valid = getattr(dut, f"{prefix}_tvalid")
        self.ready = getattr(dut, f"{prefix}_tready")
        self.payload = {name: getattr(dut, f"{prefix}_{name}") for name in self.PAYLOAD}

    def sample(self):
        valid, valid_x = _read(self.valid)
        ready, ready_x = _read(self.ready)
        unknown = {name for name, x in (("tvalid", valid_x), ("tready", ready_x)) if x}
        if not valid:                # nothing offered: the payload does not matter
            return Beat(valid=0, ready=ready, unknown=frozenset(unknown))
        values, masks = {}, {}
        for name, handle in self.payload.items():
            values[name], masks[name] = _read(handle)
        unknown |= {name for name, x in masks.items() if x}
        return Beat(valid=valid, ready=ready, data=values["tdata"], keep=values["tkeep"],
                    last=values["tlast"], user=values["tuser"],
                    unknown=frozenset(unknown), data_x=masks["tdata"])


class _Sampler:
    """Samples some of a DUT's buses with cocotb on every rising edge of clk
    and hands the Beats to the monitor's sample(); beats while rst is high
    (or X) count as reset."""

    def _start(self, clk, rst, ports):
        import cocotb

        self._clk = clk
        self._rst = rst
        self._ports = tuple(ports)
        self._task = cocotb.start_soon(self._run())

    def _where(self):
        from cocotb.utils import get_sim_time

        return f"{super()._where()}, {get_sim_time('ns'):.1f} ns"

    def _in_reset(self):
        value, xmask = _read(self._rst)
        return bool(value or xmask)

    async def _run(self):
        from cocotb.triggers import RisingEdge

        edge = RisingEdge(self._clk)
        while True:
            await edge
            self.sample(self._in_reset(), *[port.sample() for port in self._ports])

    def stop(self):
        """Stop sampling (the checks made so far stay in errors)."""
        self._task.cancel()


class InterfaceChecker(_Sampler, CompleterMonitor):
    """A CompleterMonitor on a DUT's s_axis_cq_* and m_axis_cc_* signals.

    Starts a coroutine that samples both buses on every rising edge of clk;
    beats while rst is high (or X) are ignored. mps_fn() and rcb_fn() give
    the current Max Payload Size and Read Completion Boundary in bytes; they
    are read when a non-posted request arrives.
    """

    def __init__(self, dut, clk, rst, width, mps_fn, rcb_fn, bar_ids=(0, 2), memory=None):
        super().__init__(width, mps_fn, rcb_fn, bar_ids,
                         name=getattr(dut, "_name", "dut"), memory=memory)
        self._start(clk, rst, [_StreamPort(dut, "s_axis_cq"), _StreamPort(dut, "m_axis_cc")])


class RequesterChecker(_Sampler, RequesterMonitor):
    """A RequesterMonitor on a DUT's m_axis_rq_* and s_axis_rc_* signals.

    Starts a coroutine that samples both buses on every rising edge of clk;
    beats while rst is high (or X) are ignored. The functions are those of
    RequesterMonitor; for_function() makes them from a cocotbext-pcie
    function, which is the usual way:

        checker = RequesterChecker.for_function(dut, clk, rst, 256,
                                                model.functions[0])
    """

    def __init__(self, dut, clk, rst, width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                 max_outstanding=None):
        super().__init__(width, mps_fn, mrrs_fn, ext_tags_fn, bus_master_fn,
                         max_outstanding, name=f"{getattr(dut, '_name', 'dut')} requester")
        self._start(clk, rst, [_StreamPort(dut, "m_axis_rq"), _StreamPort(dut, "s_axis_rc")])

    @classmethod
    def for_function(cls, dut, clk, rst, width, function, max_outstanding=None):
        """Read MPS, MRRS and Extended Tag Field Enable from a cocotbext-pcie
        Function (its PCIe capability), and Bus Master Enable from the
        endpoint's cfg_function_status[2], as the endpoint sees it: the hard
        IP reports a config write there a cycle or more after its command
        register changes, and the endpoint cannot act on what it has not seen."""
        status = dut.cfg_function_status

        def bus_master():
            value = status.value
            return value.is_resolvable and bool(int(value) & 0x4)

        return cls(dut, clk, rst, width,
                   mps_fn=lambda: mps_bytes(function.pcie_cap.max_payload_size),
                   mrrs_fn=lambda: mps_bytes(function.pcie_cap.max_read_request_size),
                   ext_tags_fn=lambda: bool(function.pcie_cap.extended_tag_field_enable),
                   bus_master_fn=bus_master, max_outstanding=max_outstanding)
