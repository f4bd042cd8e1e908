"""cocotbext-pcie's UltraScale+ hard-IP model, corrected where the RTL can tell.

    dev = UltraScalePlusHardIp(<the keyword arguments of
                               cocotbext.pcie.xilinx.us.UltraScalePlusPcieDevice>)

A subclass of cocotbext-pcie 0.2.16's UltraScalePlusPcieDevice that behaves
like pcie4_uscale_plus (PG213) in four places where the stock model does
not, and where this project's RTL (hw/bar_endpoint.py) depends on it:

1. Non-posted credit on CQ (pcie_cq_np_req / pcie_cq_np_req_count). The
   stock model counts the user's grants inside the loop that also blocks in
   cq_source.send() while more than two packets are queued: while blocked it
   misses clock edges, so grants are lost. Under load it ends with 0 credits
   while the endpoint believes it has granted all it may, and every
   non-posted request stalls for good. Here a coroutine of its own samples
   pcie_cq_np_req on every rising edge of user_clk, as the hard IP does,
   clears the count while user_reset is high, saturates it at 32, and drives
   pcie_cq_np_req_count.

   The encoding of pcie_cq_np_req[1:0]: 00 no credit, 01 one credit. The IP's
   own credit counter for the 512-bit interface (Vivado-generated soft logic,
   module pcie_4_0_512b_cq_output_mux; a copy is in aws/aws-fpga,
   hdk/common/ip/cl_ip/cl_ip.gen/sources_1/ip/pcie_bridge_ep/ip_0/source/
   pcie_bridge_ep_pcie4c_ip_512b_cq_output_mux.v, "Maintain current NP
   credit") adds 1 for 2'b01 and 2 for 2'b1?, saturating at MAX_CREDIT = 32,
   and clears on user reset and link down. PG213's CQ port table for the
   64/128/256-bit interface documents only 00 (no change) and 01 (increment
   by 1); it calls the other codes reserved. This model adds two for 1x at
   every width (warning once below 512 bits, where the code is reserved);
   this project's RTL only ever drives 00 and 01.

2. Which requests take that credit. The stock model takes it only for I/O
   and memory reads, and has no path at all for atomics (FetchAdd, Swap,
   CAS) and locked reads (upstream_recv raises). Here every request the
   TLP's own type calls non-posted (Tlp.is_nonposted()) waits for credit,
   atomics and locked reads are delivered on CQ like memory requests (they
   hit a memory BAR; one that hits none gets UR, a locked read a CplLk), and
   the IP's rule stays: posted requests pass non-posted ones queued for lack
   of credit; non-posted requests keep their order.

3. discontinue on CQ and RC: the stock sources set the tuser discontinue bit
   on every beat of a discontinued packet; the hard IP asserts it in the last
   beat only (PG213: "asserted only in a cycle when m_axis_cq_tlast is
   High"; with straddling, in the beat of is_eop). The model's cq_source and
   rc_source are given a subclass whose _drive sets the bit only in a beat
   that ends a discontinued packet. The endpoint ORs the bit over all beats
   of a packet, so it still drops a discontinued write whole.

   discontinue_completions(n) makes the next n completions with data
   arrive discontinued, to test the endpoint's handling of them.

4. MSI-X with Bus Master Enable clear: dropped, not sent (the stock model
   raises, which ended the virtual board's simulation at unbind); the IP
   answers fail, this model still answers sent.

Not modelled: the IP's pipeline delays between pcie_cq_np_req and the count,
and the count's reset on link down (the model's link never goes down).
"""

import collections

import cocotb
from cocotb.triggers import Event, RisingEdge
from cocotbext.pcie.core.tlp import Tlp, TlpType
from cocotbext.pcie.core.utils import PcieId
from cocotbext.pcie.xilinx.us import UltraScalePlusPcieDevice
from cocotbext.pcie.xilinx.us.interface import CqSource, RcSource
from cocotbext.pcie.xilinx.us.tlp import Tlp_us

from hw.spec.usp import sideband

NP_CREDIT_LIMIT = 32          # pcie_cq_np_req_count saturates here (MAX_CREDIT)

# Requests the stock model cannot deliver on CQ (its upstream_recv raises).
ATOMIC_AND_LOCKED = frozenset({
    TlpType.FETCH_ADD, TlpType.FETCH_ADD_64, TlpType.SWAP, TlpType.SWAP_64,
    TlpType.CAS, TlpType.CAS_64, TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64,
})


def np_credits(code):
    """Credits one cycle of pcie_cq_np_req[1:0] = `code` grants."""
    return 0 if code == 0 else 1 if code == 1 else 2


class _LastBeatDiscontinue:
    """Mixin for cocotbext's UsPcieSource classes: discontinue only in the
    beat that ends a discontinued packet.

    The stock _run ORs frame.discontinue into every beat it builds. Frames are
    remembered in the order _run takes them from the queue; each beat ends as
    many of them as it has ends of packets (tlast, or with straddling the
    is_eop bits), and carries discontinue iff one of those was discontinued.
    """

    # tuser bits of is_eop[k], per (width, straddled) where tlast is not used
    _eop_bits = {}

    @classmethod
    def adopt(cls, source):
        """Make `source` (a stock instance, before any frame was sent) one of these."""
        assert isinstance(source, cls.__bases__[-1]), source
        source.__class__ = cls
        source._open_frames = collections.deque()
        return source

    def _remember(self, frame):
        self._open_frames.append(bool(frame.discontinue))
        return frame

    async def _get_frame(self):
        return self._remember(await super()._get_frame())

    def _get_frame_nowait(self):
        return self._remember(super()._get_frame_nowait())

    def _ends(self, transaction):
        if self.seg_count == 1:
            return int(transaction.tlast)
        return sum(transaction.tuser >> bit & 1 for bit in self._eop_bits[self.width])

    async def _drive(self, obj):
        discontinue = False
        for _ in range(self._ends(obj)):
            if self._open_frames:
                discontinue |= self._open_frames.popleft()
        bit = 1 << self.discontinue_offset
        obj.tuser = (obj.tuser | bit) if discontinue else (obj.tuser & ~bit)
        await super()._drive(obj)


class HardIpCqSource(_LastBeatDiscontinue, CqSource):
    _eop_bits = {512: tuple(sideband(512).cq_is_eop + k for k in range(2))}    # is_eop[1:0]


class HardIpRcSource(_LastBeatDiscontinue, RcSource):
    _eop_bits = {256: (sideband(256).rc_is_eop, sideband(256).rc_is_eop1),    # is_eof_0/1[0]
                 512: tuple(sideband(512).rc_is_eop + k for k in range(4))}    # is_eop[3:0]


class UltraScalePlusHardIp(UltraScalePlusPcieDevice):
    """UltraScalePlusPcieDevice with the hard IP's CQ credit, non-posted
    classification and discontinue timing (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The stock constructor started _run_cq_logic (ours, by name) and the
        # sources' coroutines; no simulation time has passed yet.
        if self.cq_source is not None:
            HardIpCqSource.adopt(self.cq_source)
        if self.rc_source is not None:
            HardIpRcSource.adopt(self.rc_source)
        for function in self.functions:
            function.msix_cap.issue_msix_interrupt = self._msix_unless_master_off(function)
        self.msix_dropped = 0       # MSI-X requests made while bus mastering was off
        self._rc_discontinue = 0    # completions still to discontinue
        self._cq_wake = Event()
        self._np_req_count_driven = None
        self._reserved_np_req_warned = False
        if self.cq_source is not None:
            cocotb.start_soon(self._run_cq_np_credit_logic())

    # -- completions to the endpoint's reads -------------------------------

    def discontinue_completions(self, count=1):
        """Deliver the next `count` completions that carry data with
        discontinue set in their last beat, as the IP does when it finds a
        completion's data corrupt in its buffer (PG213)."""
        self._rc_discontinue += count

    async def _run_rc_logic(self):
        # The stock loop, with discontinue_completions(); started by the
        # stock constructor by name.
        while True:
            tlp = await self.rc_queue.get()
            frame = tlp.pack_us_rc()
            if getattr(self, "_rc_discontinue", 0) and tlp.has_data():
                self._rc_discontinue -= 1
                frame.discontinue = True
            await self.rc_source.send(frame)
            self.rx_buf_cplh_fc_count = max(self.rx_buf_cplh_fc_count - 1, 0)
            self.rx_buf_cpld_fc_count = max(
                self.rx_buf_cpld_fc_count - (tlp.get_data_credits() + 1), 0)

    # -- MSI-X -------------------------------------------------------------

    def _msix_unless_master_off(self, function):
        """An MSI-X message is a memory write: with Bus Master Enable clear the
        function sends none (the hard IP answers the request with fail). The
        stock model raises instead, which ends the simulation when a driver
        clears Bus Master Enable with an interrupt about to be sent (unbind
        with a transfer in flight, on the virtual board). Here the message
        is dropped and counted; the model still answers with sent."""
        issue = function.msix_cap.issue_msix_interrupt

        async def issue_unless_master_off(addr, data, **kwargs):
            if not function.bus_master_enable:
                self.msix_dropped += 1
                self.log.info("MSI-X to 0x%08x dropped: bus mastering is off", addr)
                return
            await issue(addr, data, **kwargs)
        return issue_unless_master_off

    # -- non-posted credit ------------------------------------------------

    def _sample(self, signal):
        try:
            return int(signal.value)
        except ValueError:          # X/Z: nothing granted, no reset
            return 0

    async def _run_cq_np_credit_logic(self):
        edge = RisingEdge(self.user_clk)
        while True:
            await edge
            if self.user_reset is not None and self._sample(self.user_reset):
                self.cq_np_req_count = 0
            else:
                code = 1 if self.pcie_cq_np_req is None else self._sample(self.pcie_cq_np_req) & 3
                if code:
                    if code > 1 and self.dw < 512 and not self._reserved_np_req_warned:
                        self._reserved_np_req_warned = True
                        self.log.warning("pcie_cq_np_req = %s: reserved on the %d-bit "
                                         "interface (PG213); counted as two credits",
                                         bin(code), self.dw)
                    self.cq_np_req_count = min(self.cq_np_req_count + np_credits(code),
                                               NP_CREDIT_LIMIT)
                if not self.cq_queue.empty() or (self.cq_np_req_count
                                                 and not self.cq_np_queue.empty()):
                    self._cq_wake.set()
            if self.pcie_cq_np_req_count is not None \
                    and self.cq_np_req_count != self._np_req_count_driven:
                self.pcie_cq_np_req_count.value = self.cq_np_req_count
                self._np_req_count_driven = self.cq_np_req_count

    # -- completer requests -----------------------------------------------

    async def _run_cq_logic(self):
        """Deliver requests on CQ in arrival order; a non-posted one waits,
        behind the non-posted ones before it, until there is a credit; posted
        ones pass the waiting."""
        edge = RisingEdge(self.user_clk)
        while True:
            if self.cq_queue.empty() and (self.cq_np_queue.empty() or not self.cq_np_req_count):
                self._cq_wake.clear()
                await self._cq_wake.wait()
            await edge
            await self._deliver_nonposted()
            while not self.cq_queue.empty():
                tlp = self.cq_queue.get_nowait()
                if tlp.is_nonposted():
                    self.cq_np_queue.put_nowait(tlp)
                    await self._deliver_nonposted()
                else:
                    await self.cq_source.send(tlp.pack_us_cq())

    async def _deliver_nonposted(self):
        while not self.cq_np_queue.empty() and self.cq_np_req_count > 0:
            tlp = self.cq_np_queue.get_nowait()
            self.cq_np_req_count -= 1
            await self.cq_source.send(tlp.pack_us_cq())

    async def upstream_recv(self, tlp):
        if tlp.fmt_type not in ATOMIC_AND_LOCKED:
            await super().upstream_recv(tlp)
            self._cq_wake.set()
            return
        tlp.release_fc()
        for f in self.functions:
            bar = f.match_bar(tlp.address)
            if bar:
                req = Tlp_us(tlp)
                req.bar_id = bar[0]
                mask = f.bar_mask[bar[0]]
                if f.bar[bar[0]] & 4:           # 64-bit BAR
                    mask |= f.bar_mask[bar[0] + 1] << 32
                    req.bar_aperture = (~mask & 0xFFFFFFFFFFFFFFFF).bit_length()
                else:
                    req.bar_aperture = (~mask & 0xFFFFFFFF).bit_length()
                req.completer_id = f.pcie_id
                self.cq_queue.put_nowait(req)
                self._cq_wake.set()
                return
        self.log.warning("No BAR match: %s request did not match any BARs: %r",
                         tlp.fmt_type.name, tlp)
        cpl = Tlp.create_ur_completion_for_tlp(tlp, PcieId(self.bus_num, 0, 0))
        if tlp.fmt_type in {TlpType.MEM_READ_LOCKED, TlpType.MEM_READ_LOCKED_64}:
            cpl.fmt_type = TlpType.CPL_LOCKED
        await self.upstream_send(cpl)
