"""A cocotb bus model of the 7-series PCIe hard IP (pcie_7x, PG054), user side.

cocotbext-pcie models the UltraScale+ hard IP, not pcie_7x; this model is
built the same way (cocotbext.pcie.core.Device with an Endpoint function)
and sits in the same simulated topology:

    dev = S7PcieDevice(dut, "a_", user_clk=dut.a_clk, user_reset=dut.a_rst,
                       max_payload_size=512, msix_table_size=31, ...)
    dev.functions[0].configure_bar(0, 64 << 10)
    switch.make_port().connect(dev)
    ...
    pci = rc.find_device(dev.functions[0].pcie_id)

Ports. Every port has its PG054 name (hw/phy/s7.py): the model takes it from
the keyword of that name if one is given (a cocotb handle, or None for
"absent"), else from ``getattr(dut, prefix + name)`` when the DUT has it,
else it is absent. The model drives:
    user_clk (a Clock at user_clk_frequency), user_reset (high about 100 ns
    from construction), user_lnk_up, m_axis_rx_{tdata,tkeep,tlast,tuser,
    tvalid}, s_axis_tx_tready, cfg_command, cfg_dcommand, cfg_lcommand,
    cfg_bus_number, cfg_device_number, cfg_function_number,
    cfg_interrupt_msixenable, cfg_interrupt_msixfm
and samples m_axis_rx_tready, s_axis_tx_{tdata,tkeep,tlast,tuser,tvalid},
rx_np_ok and rx_np_req (both optional: absent means "always"; each cycle
with rx_np_req high allows one more non-posted request, up to 32 banked).

Receive (link -> user): requests that hit a BAR and completions for our
function are laid on m_axis_rx as pcie_7x does (hw/spec/s7_stream.py RxPacker):
tuser[9:2] bar_hit, [1] err_fwd (EP), is_sof/is_eof; at 128 bits tlast is
0 and tkeep 0xffff (rx_exact=True, the IP's behaviour) and TLPs straddle
(rx_straddle). Non-posted requests wait while rx_np_ok is low (posted
requests and completions pass them); rx_np_ok_slack=2 lets up to two more
start after it falls, as the IP may. Memory reads that hit no BAR get an
Unsupported Request completion from the model; writes that hit none are
dropped; I/O requests get UR.

Transmit (user -> link): TLPs on s_axis_tx (ending at tlast; tkeep whole
DWs from the low end; tuser[3] src_dsc drops the TLP, tuser[1] err_fwd
poisons it) are checked and forwarded upstream. Every violation is appended
to ``tx_errors`` (and logged as a warning); a TLP with a violation is not
forwarded. Checked: tkeep; the length field against the DWs present; TD
(no digest); decodable type; cocotbext's Tlp.check() (4 KiB crossing,
byte count); a 4-DW memory request must address >= 4 GiB; requests carry
our requester ID, need Bus Master Enable, writes <= MPS, reads <= MRRS,
tags < 32 unless Extended Tag is enabled; completions carry our completer
ID, <= MPS of payload, and answer a read the model delivered on
m_axis_rx: requester ID, tag, TC, attributes, byte count, lower address and
the Read Completion Boundary of split completions (reads_outstanding counts
the reads not yet completed). tx_tlps counts the TLPs forwarded,
tx_discontinued those dropped for src_dsc.

MSI-X: on 7-series the user logic sends the message itself as a memory
write on s_axis_tx; the model forwards it like any other.

Timing hooks: rx_pause and tx_backpressure (also set_rx_pause_generator /
set_tx_backpressure_generator) take an iterable/generator of per-cycle
truthy values or a callable called every cycle, as cocotbext-axi's
set_pause_generator: truthy means m_axis_rx_tvalid low for that cycle (a
beat not yet accepted stays), or s_axis_tx_tready low. rx_unaligned_start
(same forms, consulted whenever a TLP starts from idle at 128 bits) makes
that TLP start at byte 8.

Logging is under "cocotb.pcie" (the topology sets it to ERROR); no
per-TLP logs above DEBUG.
"""

import collections
import contextlib
import io

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import Event, RisingEdge, Timer
from cocotbext.pcie.core import Device, Endpoint
from cocotbext.pcie.core.caps import MsiCapability, MsixCapability
from cocotbext.pcie.core.tlp import CplStatus, Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId

from hw.spec import pcie, s7_stream

RX_PORTS = ("m_axis_rx_tdata", "m_axis_rx_tkeep", "m_axis_rx_tlast", "m_axis_rx_tuser",
            "m_axis_rx_tvalid", "m_axis_rx_tready")
TX_PORTS = ("s_axis_tx_tdata", "s_axis_tx_tkeep", "s_axis_tx_tlast", "s_axis_tx_tuser",
            "s_axis_tx_tvalid", "s_axis_tx_tready")
CFG_PORTS = ("cfg_command", "cfg_dcommand", "cfg_lcommand", "cfg_bus_number",
             "cfg_device_number", "cfg_function_number", "cfg_interrupt_msixenable",
             "cfg_interrupt_msixfm")
OTHER_PORTS = ("user_clk", "user_reset", "user_lnk_up", "rx_np_ok", "rx_np_req")
PORTS = RX_PORTS + TX_PORTS + CFG_PORTS + OTHER_PORTS

USER_CLK_FREQUENCIES = (62.5e6, 125e6, 250e6)
RESET_NS = 100
NP_REQ_LIMIT = 32            # rx_np_req credits the model accumulates at most

TX_SRC_DSC = 1 << s7_stream.TX_TUSER["src_dsc"][0]     # discontinue: drop the TLP
TX_ERR_FWD = 1 << s7_stream.TX_TUSER["err_fwd"][0]     # poison the TLP

MEM_READS = {TlpType.MEM_READ, TlpType.MEM_READ_64}
MEM_WRITES = {TlpType.MEM_WRITE, TlpType.MEM_WRITE_64}
MEM_REQUESTS = MEM_READS | MEM_WRITES | {TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64}
CFG_REQUESTS = {TlpType.CFG_READ_0, TlpType.CFG_WRITE_0, TlpType.CFG_READ_1, TlpType.CFG_WRITE_1}
COMPLETIONS = {TlpType.CPL, TlpType.CPL_DATA, TlpType.CPL_LOCKED, TlpType.CPL_LOCKED_DATA}
IO_REQUESTS = {TlpType.IO_READ, TlpType.IO_WRITE}

_GIVEN_NOT = object()


# The model's own testbench (hw/sim/test_s7_model.py, built by
# tests/test_s7_model.py): one device per width, by port prefix.
BENCH_WIDTHS = {"a_": 64, "b_": 128}


class S7PcieFunction(Endpoint):
    """pcie_7x's function 0: PM at 0x40, PCIe at 0x60, MSI-X at 0x9c (no MSI)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_capability(self.pm_cap, offset=0x40 // 4)
        self.msi_cap = MsiCapability()           # not registered: the core is built without MSI
        self.register_capability(self.pcie_cap, offset=0x60 // 4)
        self.msix_cap = MsixCapability()
        self.register_capability(self.msix_cap, offset=0x9C // 4)


class _Hook:
    """A per-cycle pause source: None, an iterable/generator, or a callable."""

    def __init__(self, source=None):
        if source is None:
            self._next = None
        elif callable(source) and not hasattr(source, "__next__"):
            self._next = source
        else:
            it = iter(source)
            self._next = lambda: next(it, False)

    def __call__(self):
        return bool(self._next()) if self._next is not None else False


class _Read:
    """A memory read delivered on m_axis_rx, waiting for its completions."""

    def __init__(self, tlp):
        self.tlp = tlp
        self.first = tlp.address + _first_byte_offset(tlp.first_be)   # its first byte
        self.total = _read_byte_count(tlp)
        self.remaining = self.total

    def next_address(self):
        return self.first + self.total - self.remaining


def _first_byte_offset(first_be):
    return (first_be & -first_be).bit_length() - 1 if first_be else 0


def _read_byte_count(tlp):
    """Byte count of a memory read (PCIe Table 2-39; zero-length reads: 1)."""
    if tlp.length == 1:
        if tlp.first_be == 0:
            return 1
        return (tlp.first_be & 0xF).bit_length() - _first_byte_offset(tlp.first_be)
    tail = 4 - (tlp.last_be & 0xF).bit_length()          # disabled bytes of the last DW
    return 4 * tlp.length - _first_byte_offset(tlp.first_be) - tail


def _bit(handle):
    try:
        return int(handle.value) == 1
    except ValueError:
        return False


def _vector(handle):
    """(value, mask of X/Z bits) of a vector; X/Z bits read as 0."""
    value = handle.value
    try:
        return int(value), 0
    except ValueError:
        s = str(value)
        return (int("".join("1" if c in "1H" else "0" for c in s), 2),
                int("".join("0" if c in "01LH" else "1" for c in s), 2))


class S7PcieDevice(Device):
    """The pcie_7x hard IP's user side (see the module doc for the ports and behaviour).

    dut, prefix: where to find ports not given as keywords (prefix + PG054 name).
    width: 64 or 128 (default: the width of m_axis_rx_tdata or s_axis_tx_tdata).
    user_clk_frequency: Hz, 62.5e6, 125e6 or 250e6 (default 250 MHz at 64 bits,
        125 MHz at 128 bits; 250 MHz at 128 bits for x8).
    pcie_link_width: 1, 2, 4 or 8 lanes (Gen2).
    max_payload_size: bytes (Max Payload Size Supported), enable_extended_tag.
    msix_table_size (N-1, as in the capability), msix_table_bir,
        msix_table_offset, msix_pba_bir, msix_pba_offset.
    rx_straddle: 128 bits: a TLP starts at byte 8 of the beat in which the previous
        one ends at byte 3 or 7, when it is queued (default True).
    rx_exact: drive tlast/tkeep/is_sof/is_eof as the IP does (128 bits: tlast 0,
        tkeep all ones; 64 bits: is_sof/is_eof too). False: 128-bit tlast on a
        beat where a TLP ends and no other starts, tkeep the data bytes, and
        tuser[21:10] zero at 64 bits.
    rx_np_ok_slack: non-posted requests that may still start after rx_np_ok falls
        (the IP may deliver up to 2; default 0: honoured at the next TLP start).
    rx_pause, tx_backpressure, rx_unaligned_start: per-cycle hooks (module doc).
    tx_queue_limit: assembled TLPs waiting to go upstream before tready falls.
    """

    def __init__(self, dut=None, prefix="", *, width=None, user_clk_frequency=None,
                 pcie_link_width=4, max_payload_size=512, enable_extended_tag=False,
                 msix_table_size=0, msix_table_bir=0, msix_table_offset=0,
                 msix_pba_bir=0, msix_pba_offset=0,
                 rx_straddle=True, rx_exact=True, rx_np_ok_slack=0,
                 rx_pause=None, tx_backpressure=None, rx_unaligned_start=None,
                 tx_queue_limit=4, **ports):
        super().__init__()
        unknown = set(ports) - set(PORTS)
        if unknown:
            raise TypeError(f"S7PcieDevice: unknown ports {sorted(unknown)}")
        for name in PORTS:
            handle = ports.get(name, _GIVEN_NOT)
            if handle is _GIVEN_NOT:
                handle = getattr(dut, prefix + name, None) if dut is not None else None
            setattr(self, name, handle)
        if self.user_clk is None:
            raise ValueError("S7PcieDevice needs user_clk")
        self.has_rx = self.m_axis_rx_tdata is not None
        self.has_tx = self.s_axis_tx_tdata is not None
        for flag, names in ((self.has_rx, RX_PORTS), (self.has_tx, TX_PORTS)):
            missing = [n for n in names if flag and getattr(self, n) is None]
            if missing:
                raise ValueError(f"S7PcieDevice: missing ports {missing}")
        widths = {len(h) for h in (self.m_axis_rx_tdata, self.s_axis_tx_tdata) if h is not None}
        if width is None:
            if len(widths) != 1:
                raise ValueError(f"S7PcieDevice: width not given, stream widths {widths}")
            width = widths.pop()
        if width not in (64, 128):
            raise ValueError(f"pcie_7x's interface is 64 or 128 bits wide, not {width}")
        if widths - {width}:
            raise ValueError(f"S7PcieDevice: width {width}, streams {widths}")
        self.width = width
        if pcie_link_width not in (1, 2, 4, 8):
            raise ValueError(f"pcie_7x links are x1, x2, x4 or x8, not x{pcie_link_width}")
        if user_clk_frequency is None:
            user_clk_frequency = 250e6 if width == 64 or pcie_link_width == 8 else 125e6
        if user_clk_frequency not in USER_CLK_FREQUENCIES:
            raise ValueError(f"pcie_7x's user_clk is 62.5, 125 or 250 MHz, "
                             f"not {user_clk_frequency}")
        if max_payload_size not in (128, 256, 512, 1024):
            raise ValueError(f"max_payload_size {max_payload_size}")
        self.user_clk_frequency = user_clk_frequency
        self.pcie_link_width = pcie_link_width
        self.max_payload_size = max_payload_size
        self.enable_extended_tag = enable_extended_tag
        self.rx_straddle = bool(rx_straddle) and width == 128
        self.rx_exact = rx_exact
        self.rx_np_ok_slack = rx_np_ok_slack
        self.tx_queue_limit = tx_queue_limit
        self._rx_pause = _Hook(rx_pause)
        self._tx_backpressure = _Hook(tx_backpressure)
        self._rx_unaligned = _Hook(rx_unaligned_start)

        # What the model found on s_axis_tx.
        self.tx_errors = []          # one message per violation
        self.tx_tlps = 0             # TLPs forwarded upstream
        self.tx_discontinued = 0     # TLPs dropped for src_dsc
        self.rx_tlps = 0             # TLPs that started on m_axis_rx

        # The link and the function.
        self.upstream_port.max_link_speed = 2
        self.upstream_port.max_link_width = pcie_link_width
        self.default_function = S7PcieFunction
        f = self.make_function()
        f.pcie_cap.max_payload_size_supported = (max_payload_size // 128 - 1).bit_length()
        f.pcie_cap.extended_tag_supported = enable_extended_tag
        f.msix_cap.msix_table_size = msix_table_size
        f.msix_cap.msix_table_bar_indicator_register = msix_table_bir
        f.msix_cap.msix_table_offset = msix_table_offset
        f.msix_cap.msix_pba_bar_indicator_register = msix_pba_bir
        f.msix_cap.msix_pba_offset = msix_pba_offset

        self._rx_queue = []          # [(tlp bytes, bar or None, non-posted)]
        self._rx_packer = s7_stream.RxPacker(width, self.rx_straddle, rx_exact)
        self._np_ok = True
        self._np_slack_used = 0
        self._np_credits = 0
        self._reads = {}             # (requester id, tag) -> _Read
        self._tx_frames = collections.deque()
        self._tx_event = Event()
        self._in_reset = True

        # Defined values before the first clock edge. (Plain writes: under
        # Icarus an Immediate write to a toplevel input at time 0 is lost.)
        if self.user_reset is not None:
            self.user_reset.value = 1
        outputs = [self.user_lnk_up] + [getattr(self, name) for name in CFG_PORTS]
        if self.has_rx:
            outputs += [self.m_axis_rx_tdata, self.m_axis_rx_tkeep, self.m_axis_rx_tlast,
                        self.m_axis_rx_tuser, self.m_axis_rx_tvalid]
        if self.has_tx:
            outputs.append(self.s_axis_tx_tready)
        for handle in outputs:
            if handle is not None:
                handle.value = 0

        self._clock = Clock(self.user_clk, round(1e9 / user_clk_frequency, 3), unit="ns")
        self._clock.start()
        cocotb.start_soon(self._run_reset())
        cocotb.start_soon(self._run_cfg_status())
        if self.has_rx:
            cocotb.start_soon(self._run_rx())
        if self.has_tx:
            cocotb.start_soon(self._run_tx())
            cocotb.start_soon(self._run_tx_forward())

    # -- hooks ---------------------------------------------------------------

    def set_rx_pause_generator(self, generator=None):
        self._rx_pause = _Hook(generator)

    def set_tx_backpressure_generator(self, generator=None):
        self._tx_backpressure = _Hook(generator)

    def set_rx_unaligned_start_generator(self, generator=None):
        self._rx_unaligned = _Hook(generator)

    @property
    def reads_outstanding(self):
        """Memory reads delivered on m_axis_rx (or queued) not completed yet."""
        return len(self._reads)

    @property
    def rx_idle(self):
        """Nothing queued for m_axis_rx and no TLP under way."""
        return not self._rx_queue and not self._rx_packer.in_packet

    def inject(self, tlp, bar=None):
        """Queue a TLP for m_axis_rx as if it had come from the link, with no
        BAR matching (bar: the BAR it hit, or None): for tests of requests the
        IP would otherwise answer or drop itself. A non-posted request is
        recorded, so its completion is checked like any other. `tlp` may be
        the wire bytes of a posted TLP that cocotbext cannot pack (messages)."""
        if isinstance(tlp, (bytes, bytearray)):
            self._rx_queue.append((bytes(tlp), bar, False))
            return
        tlp = Tlp(tlp)
        if tlp.is_nonposted():
            self._reads[(int(tlp.requester_id), tlp.tag)] = _Read(tlp)
        self._rx_queue.append((bytes(tlp.pack()), bar, tlp.is_nonposted()))

    # -- from the link -------------------------------------------------------

    async def upstream_recv(self, tlp):
        self.log.debug("Got downstream TLP: %r", tlp)
        f = self.functions[0]
        kind = tlp.fmt_type
        if kind in {TlpType.CFG_READ_0, TlpType.CFG_WRITE_0}:
            self.bus_num = tlp.completer_id.bus
            for func in self.functions:
                if func.pcie_id == tlp.completer_id:
                    await func.upstream_recv(tlp)
                    return
            tlp.release_fc()
            self.log.warning("Function not found: failed to route config type 0 TLP: %r", tlp)
            return
        tlp.release_fc()
        if kind in {TlpType.CFG_READ_1, TlpType.CFG_WRITE_1}:
            self.log.warning("Malformed TLP: endpoint received config type 1 TLP: %r", tlp)
            return
        if kind in COMPLETIONS:
            if tlp.requester_id == f.pcie_id:
                self._rx_queue.append((bytes(tlp.pack()), None, False))
            else:
                self.log.warning("Unexpected completion: not for this function: %r", tlp)
            return
        if kind in MEM_READS | MEM_WRITES:
            bar = f.match_bar(tlp.address)
            if bar is not None:
                if kind in MEM_READS:
                    self._reads[(int(tlp.requester_id), tlp.tag)] = _Read(Tlp(tlp))
                self._rx_queue.append((bytes(tlp.pack()), bar[0], tlp.is_nonposted()))
                return
            if kind in MEM_WRITES:
                self.log.warning("No BAR match: memory write dropped: %r", tlp)
                return
            self.log.warning("No BAR match: memory read answered UR: %r", tlp)
        elif kind in IO_REQUESTS:
            self.log.warning("I/O request answered UR: %r", tlp)
        else:
            self.log.warning("TLP type %s not handled, dropped: %r", kind.name, tlp)
            return
        cpl = Tlp.create_ur_completion_for_tlp(tlp, PcieId(self.bus_num, 0, 0))
        await self.upstream_send(cpl)

    # -- reset and configuration status --------------------------------------

    async def _run_reset(self):
        await Timer(RESET_NS, "ns")
        await RisingEdge(self.user_clk)
        if self.user_reset is not None:
            self.user_reset.value = 0
        self._in_reset = False

    def _cfg_values(self):
        f = self.functions[0]
        p = f.pcie_cap
        command = pcie.pack(
            pcie.COMMAND, io_space=f.io_space_enable, memory_space=f.memory_space_enable,
            bus_master=f.bus_master_enable, parity_error_response=f.parity_error_response_enable,
            serr=f.serr_enable, interrupt_disable=f.interrupt_disable)
        dcommand = pcie.pack(
            pcie.DEVICE_CONTROL,
            correctable_error_reporting=p.correctable_error_reporting_enable,
            non_fatal_error_reporting=p.non_fatal_error_reporting_enable,
            fatal_error_reporting=p.fatal_error_reporting_enable,
            unsupported_request_reporting=p.unsupported_request_reporting_enable,
            relaxed_ordering=p.enable_relaxed_ordering, max_payload=p.max_payload_size & 7,
            ext_tag=p.extended_tag_field_enable, phantom_functions=p.phantom_functions_enable,
            aux_power_pm=p.aux_power_pm_enable, no_snoop=p.enable_no_snoop,
            max_read_req=p.max_read_request_size & 7)
        lcommand = pcie.pack(
            pcie.LINK_CONTROL, aspm_control=p.aspm_control & 3, rcb=p.read_completion_boundary,
            link_disable=p.link_disable, common_clock=p.common_clock_configuration,
            extended_synch=p.extended_synch,
            clock_power_management=p.enable_clock_power_management,
            hw_autonomous_width_disable=p.hardware_autonomous_width_disable,
            bandwidth_management_interrupt=p.link_bandwidth_management_interrupt_enable,
            autonomous_bandwidth_interrupt=p.link_autonomous_bandwidth_interrupt_enable)
        return {
            "user_lnk_up": int(not self._in_reset),
            "cfg_command": command,
            "cfg_dcommand": dcommand,
            "cfg_lcommand": lcommand,
            "cfg_bus_number": f.pcie_id.bus,
            "cfg_device_number": f.pcie_id.device,
            "cfg_function_number": f.pcie_id.function,
            "cfg_interrupt_msixenable": int(bool(f.msix_cap.msix_enable)),
            "cfg_interrupt_msixfm": int(bool(f.msix_cap.msix_function_mask)),
        }

    async def _run_cfg_status(self):
        edge = RisingEdge(self.user_clk)
        driven = {}
        while True:
            await edge
            for name, value in self._cfg_values().items():
                handle = getattr(self, name)
                if handle is not None and driven.get(name) != value:
                    handle.value = value
                    driven[name] = value

    # -- receive: m_axis_rx --------------------------------------------------

    def _np_allowed(self):
        if self.rx_np_req is not None and self._np_credits <= 0:
            return False
        return self._np_ok or self._np_slack_used < self.rx_np_ok_slack

    def _rx_pull(self):
        """The next TLP to start on m_axis_rx: the oldest, except that posted
        requests and completions pass non-posted ones that must wait."""
        for i, (raw, bar, non_posted) in enumerate(self._rx_queue):
            if non_posted:
                if not self._np_allowed():
                    continue
                if not self._np_ok:
                    self._np_slack_used += 1
                if self.rx_np_req is not None:
                    self._np_credits -= 1
            del self._rx_queue[i]
            self.rx_tlps += 1
            return raw, bar
        return None

    def _drive_rx(self, beat):
        if beat is None:
            self.m_axis_rx_tvalid.value = 0
            return
        data, keep, last, user = beat
        self.m_axis_rx_tdata.value = data
        self.m_axis_rx_tkeep.value = keep
        self.m_axis_rx_tlast.value = last
        self.m_axis_rx_tuser.value = user
        self.m_axis_rx_tvalid.value = 1

    async def _run_rx(self):
        edge = RisingEdge(self.user_clk)
        beat = None                  # the beat on the bus, not yet accepted
        valid = False                # tvalid as driven
        while True:
            await edge
            if self._in_reset:
                continue
            if self.rx_np_ok is not None:
                self._np_ok = _bit(self.rx_np_ok)
                if self._np_ok:
                    self._np_slack_used = 0
            if self.rx_np_req is not None and _bit(self.rx_np_req):
                self._np_credits = min(self._np_credits + 1, NP_REQ_LIMIT)
            if beat is not None and _bit(self.m_axis_rx_tready):
                beat = None
            pause = self._rx_pause()
            if beat is None:
                if not pause and (self._rx_queue or self._rx_packer.in_packet):
                    unaligned = (self.width == 128 and not self._rx_packer.in_packet
                                 and self._rx_unaligned())
                    beat = self._rx_packer.next_beat(self._rx_pull, unaligned=unaligned)
                if beat is not None or valid:
                    self._drive_rx(beat)
                    valid = beat is not None

    # -- transmit: s_axis_tx -------------------------------------------------

    def _tx_error(self, message):
        self.tx_errors.append(message)
        self.log.warning("s_axis_tx: %s", message)

    async def _run_tx(self):
        edge = RisingEdge(self.user_clk)
        ready = False
        frame = []
        max_beats = (4 + 1024 + 1) * 32 // self.width + 1
        while True:
            await edge
            if self._in_reset:
                continue
            if ready and _bit(self.s_axis_tx_tvalid):
                data, xmask = _vector(self.s_axis_tx_tdata)
                keep, _ = _vector(self.s_axis_tx_tkeep)
                user, _ = _vector(self.s_axis_tx_tuser)
                last = _bit(self.s_axis_tx_tlast)
                frame.append((data, xmask, keep, last, user))
                if last or len(frame) > max_beats:
                    self._tx_frames.append(frame)
                    self._tx_event.set()
                    frame = []
            want = not self._tx_backpressure() and len(self._tx_frames) < self.tx_queue_limit
            if want != ready:
                ready = want
                self.s_axis_tx_tready.value = int(ready)

    async def _run_tx_forward(self):
        while True:
            while not self._tx_frames:
                self._tx_event.clear()
                await self._tx_event.wait()
            frame = self._tx_frames.popleft()
            tlp = self._check_frame(frame)
            if tlp is not None:
                self.tx_tlps += 1
                await self.send(tlp)

    def _check_frame(self, frame):
        """The TLP of one s_axis_tx frame, or None (discontinued, or a violation
        recorded in tx_errors)."""
        full = (1 << self.width // 8) - 1
        raw = bytearray()
        errors = []
        if not frame[-1][3]:
            errors.append(f"no tlast after {len(frame)} beats")
        for n, (data, xmask, keep, last, user) in enumerate(frame):
            dws = 0
            while dws < self.width // 32 and (keep >> 4 * dws) & 0xF == 0xF:
                dws += 1
            if keep >> 4 * dws or dws == 0:
                errors.append(f"beat {n}: tkeep {keep:#x} is not whole DWs from the low end")
            elif not last and keep != full:
                errors.append(f"beat {n}: tkeep {keep:#x} before tlast (must be {full:#x})")
            if xmask & ((1 << 32 * dws) - 1):
                errors.append(f"beat {n}: tdata has X/Z bits in kept bytes")
            for i in range(dws):
                raw += ((data >> 32 * i) & 0xFFFFFFFF).to_bytes(4, "big")
        if any(user & TX_SRC_DSC for *_, user in frame):
            self.tx_discontinued += 1
            self.log.debug("s_axis_tx: discontinued TLP dropped")
            return None
        tlp = None
        if not errors:
            tlp, errors, commit = self._check_tlp(bytes(raw))
        if errors:
            head = raw[:16].hex()
            for e in errors:
                self._tx_error(f"{e} [TLP {len(raw) // 4} DWs, header {head}]")
            return None
        commit()
        if any(user & TX_ERR_FWD for *_, user in frame):
            tlp.ep = True
        return tlp

    def _check_tlp(self, raw):
        """(tlp, violations, commit): commit() records a completion's progress."""
        nothing = lambda: None
        if len(raw) < 12:
            return None, [f"{len(raw)} bytes: shorter than a TLP header"], nothing
        fmt = raw[0] >> 5
        header = 4 if fmt & 1 else 3
        length = ((raw[2] & 3) << 8 | raw[3]) or 1024
        payload = length if fmt & 2 else 0
        if raw[2] & 0x80:
            return None, ["TD set: the model takes no TLP digest"], nothing
        if len(raw) != 4 * (header + payload):
            return None, [f"{len(raw) // 4} DWs, but the header says {header} + "
                          f"{payload} (length field {length if payload else 'ignored'})"], nothing
        try:
            tlp = Tlp.unpack(raw)
        except Exception as e:      # an unknown fmt/type
            return None, [f"cannot decode: {e}"], nothing
        errors = []
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            ok = tlp.check()
        if not ok:
            errors += [line.split(":")[0] for line in out.getvalue().splitlines()]
        f = self.functions[0]
        kind = tlp.fmt_type
        mps = 128 << f.pcie_cap.max_payload_size
        if tlp.has_data() and len(tlp.data) > mps:
            errors.append(f"{kind.name} payload {len(tlp.data)} bytes > Max Payload Size {mps}")
        if kind in MEM_REQUESTS and header == 4 and tlp.address < 1 << 32:
            errors.append(f"{kind.name} with a 4-DW header to {tlp.address:#x} "
                          "(< 4 GiB must use the 3-DW format)")
        if kind in COMPLETIONS:
            if tlp.completer_id != f.pcie_id:
                errors.append(f"completion with completer ID {tlp.completer_id}, "
                              f"ours is {f.pcie_id}")
            commit = self._check_completion(tlp, errors)
            return tlp, errors, commit
        if kind in CFG_REQUESTS:
            errors.append(f"{kind.name}: an endpoint sends no configuration requests")
        if tlp.requester_id != f.pcie_id:
            errors.append(f"{kind.name} with requester ID {tlp.requester_id}, ours is {f.pcie_id}")
        if not f.bus_master_enable:
            errors.append(f"{kind.name} while Bus Master Enable is off")
        if kind in MEM_READS:
            mrrs = 128 << f.pcie_cap.max_read_request_size
            if 4 * tlp.length > mrrs:
                errors.append(f"{kind.name} of {4 * tlp.length} bytes > "
                              f"Max Read Request Size {mrrs}")
        if tlp.is_nonposted():
            tags = 256 if f.pcie_cap.extended_tag_field_enable else 32
            if tlp.tag >= tags:
                errors.append(f"{kind.name} tag {tlp.tag}: tags are < {tags} "
                              f"(Extended Tag {'on' if tags == 256 else 'off'})")
        return tlp, errors, nothing

    def _check_completion(self, cpl, errors):
        """Check a completion against the read it answers; return the commit."""
        key = (int(cpl.requester_id), cpl.tag)
        read = self._reads.get(key)
        nothing = lambda: None
        if read is None:
            errors.append(f"completion to {cpl.requester_id} tag {cpl.tag}: no such read "
                          "outstanding on m_axis_rx")
            return nothing
        req = read.tlp
        if cpl.tc != req.tc or int(cpl.attr) != int(req.attr):
            errors.append(f"completion TC {int(cpl.tc)} attr {int(cpl.attr)}, the read has "
                          f"TC {int(req.tc)} attr {int(req.attr)}")
        if cpl.status != CplStatus.SC:
            def done():
                del self._reads[key]
            return done
        if cpl.fmt_type not in {TlpType.CPL_DATA, TlpType.CPL_LOCKED_DATA}:
            errors.append("successful completion of a memory read without data")
            return nothing
        if cpl.byte_count != read.remaining:
            errors.append(f"completion byte count {cpl.byte_count}, {read.remaining} "
                          f"bytes of the read remain")
        address = read.next_address()
        if cpl.lower_address != address & 0x7F:
            errors.append(f"completion lower address {cpl.lower_address:#04x}, "
                          f"expected {address & 0x7F:#04x}")
        carried = 4 * cpl.length - (cpl.lower_address & 3)
        final = cpl.byte_count <= carried
        rcb = 128 if self.functions[0].pcie_cap.read_completion_boundary else 64
        if not final and (address + carried) % rcb:
            errors.append(f"split completion ends at {address + carried:#x}, "
                          f"not on the {rcb}-byte Read Completion Boundary")

        def commit():
            if final:
                del self._reads[key]
            else:
                read.remaining -= carried
        return commit

