"""The DMA engine's read direction, for a descriptor (bus address A,
local offset L, length), and the arbiter that shares RQ with the writes.

* Reads split at MRRS-aligned bus addresses (none crosses 4 KiB), each
  with a free tag. The tag table keeps, per tag, the BAR2 offset that
  the request's 4 KiB bus page maps to, so a completion's 12-bit Lower
  Address gives its place in BAR2 directly, whatever the order and split
  of the completions.
* Outstanding reads never reserve more completion credit than the hard
  IP's completion buffer holds, so a read never waits inside the hard IP
  and holds up the writes behind it.
* A completion is the last of its request when its Byte Count is the
  number of bytes it carries, or when its status is not Successful.
* A completion the hard IP discontinues (corrupt payload in its buffer)
  ends its request POISONED; its tag rests as after a timeout.
* Completion timeout: a scanner visits one tag a cycle. A request still
  outstanding `timeout` cycles after it was sent ends with TIMEOUT, and
  its tag rests for another `timeout` before reuse, so a late completion
  finds it unused and is ignored instead of landing in a newer request.
* The receiver writes N-dword windows of BAR2: each window is a fixed
  byte offset into the completion's beats (the previous beat and the
  current one), so one window is written per beat; the window left over
  at the end of a completion is written while the next one's first beat
  arrives. Windows go to memory through an AxiWriter, a command per
  completion; a request ends (the tag table hears of it) only once the
  writes of its completions are in memory, so a descriptor never ends
  before its data can be read back.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.core import layouts, ports
from hw.core.axi import axi_write_signature
from hw.core.memport import AxiWriter
from hw.core.dma.common import (CREDIT_BITS, READ_REQUEST, TAG_BITS, DmaStatus, log2,
                                next_piece, read_command, rq_tuser, size_code_bytes)
from hw.core.dma.sequencer import READ_ENDED, READ_ISSUED
from hw.spec.usp import CplStatus, RcErrorCode, ReqType, sideband

TAGS, LOW_TAGS = 256, 32                   # 8-bit tags; 5-bit ones without extended tags


def tag_info_layout(local_bits):
    """What the table keeps per tag: the BAR2 offset its bus page maps to,
    its descriptor's slot, the completion credits it reserved."""
    return data.StructLayout({"lbase": local_bits, "slot": 4, "credits": CREDIT_BITS})


def tag_alloc_signature(local_bits, max_credits):
    """The requester's side of the tag table: a free tag, and the credits
    reserved; `take` uses the tag for a request described by `info`."""
    return wiring.Signature({
        "ready": In(1), "tag": In(TAG_BITS), "credits": In(range(max_credits + 257)),
        "take": Out(1), "info": Out(tag_info_layout(local_bits)),
    })


def tag_lookup_signature(local_bits):
    """The receiver's side of the tag table: what a completion's tag holds;
    `finish`: the request of `done.tag` ended (its last completion is in
    BAR2, or it was discontinued); `held`: a completion of `held_tag` has
    data still to write."""
    return wiring.Signature({
        "tag": Out(TAG_BITS), "info": In(tag_info_layout(local_bits)), "outstanding": In(1),
        "ready": In(1),
        "finish": Out(1),
        "done": Out(data.StructLayout({"tag": TAG_BITS, "discontinued": 1, "slot": 4,
                                       "error": 4, "credits": CREDIT_BITS})),
        "held": Out(1), "held_tag": Out(TAG_BITS),
    })


class ReadRequester(wiring.Component):
    """One Memory Read per MRRS-aligned piece of a read descriptor, each
    with a free tag, while the completion credit allows."""

    def __init__(self, local_bits, cpl_credits):
        self.local_bits, self.cpl_credits = local_bits, cpl_credits
        super().__init__({
            "reads": In(read_command(local_bits)),
            "tags": Out(tag_alloc_signature(local_bits, cpl_credits)),
            "request": Out(stream.Signature(READ_REQUEST)),
            "issued": Out(READ_ISSUED),
            "max_read_req": In(3), "aborting": In(1),
            "active": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        lb, cmd, tags = self.local_bits, self.reads, self.tags
        active = self.active
        addr = Signal(64)
        rem = Signal(25)
        local = Signal(lb)
        slot = Signal(4)
        m.d.comb += cmd.ready.eq(~active & ~self.aborting)
        with m.If(cmd.valid & cmd.ready):
            c = cmd.payload
            m.d.sync += [active.eq(1), addr.eq(c.bus), rem.eq(c.length), local.eq(c.local),
                         slot.eq(c.slot)]
        mrrs = size_code_bytes(m, self.max_read_req, "mrrs")
        n_bytes, dw, fbe, lbe = next_piece(m, addr, rem, mrrs, "read")
        credits = Signal(CREDIT_BITS)
        m.d.comb += credits.eq((dw + 3) >> 2)
        req = self.request
        issue = req.valid & req.ready
        m.d.comb += [
            req.valid.eq(active & tags.ready & (tags.credits + credits <= self.cpl_credits)
                         & ~self.aborting),
            req.payload.addr.eq(addr), req.payload.dw.eq(dw), req.payload.tag.eq(tags.tag),
            req.payload.fbe.eq(fbe), req.payload.lbe.eq(lbe),
            tags.take.eq(issue),
            tags.info.lbase.eq((local - addr[:12])[:lb]), tags.info.slot.eq(slot),
            tags.info.credits.eq(credits),
            self.issued.valid.eq(issue), self.issued.slot.eq(slot),
            self.issued.all.eq(rem == n_bytes),
        ]
        with m.If(issue):
            m.d.sync += [addr.eq(addr + n_bytes), local.eq(local + n_bytes),
                         rem.eq(rem - n_bytes)]
            with m.If(rem == n_bytes):
                m.d.sync += active.eq(0)
        with m.If(self.aborting):
            m.d.sync += active.eq(0)
        return m


class TagTable(wiring.Component):
    """The read tags: free pools, what each outstanding one is for, the
    completion credit they hold, and the timeout scanner."""

    def __init__(self, local_bits, cpl_credits):
        self.local_bits, self.cpl_credits = local_bits, cpl_credits
        super().__init__({
            "alloc": In(tag_alloc_signature(local_bits, cpl_credits)),
            "lookup": In(tag_lookup_signature(local_bits)),
            "ended": Out(READ_ENDED),
            "ext_tags": In(1), "timeout": In(32), "aborting": In(1),
            "reads_out": Out(9),
        })

    def elaborate(self, platform):
        m = Module()
        info = data.StructLayout({**tag_info_layout(self.local_bits).members, "time": 32})
        m.submodules.info = mem = Memory(shape=info, depth=TAGS, init=[])
        info_w = mem.write_port()
        info_cpl = mem.read_port(domain="comb")
        info_scan = mem.read_port(domain="comb")
        now = Signal(32)
        m.d.sync += now.eq(now + 1)
        alloc, look = self.alloc, self.lookup
        init_done, free, free_tag = self._pools(m)
        m.d.comb += [
            info_w.addr.eq(alloc.tag), info_w.en.eq(alloc.take),
            info_w.data.eq(Cat(alloc.info, now)),
            info_cpl.addr.eq(look.tag),
            look.info.eq(info_cpl.data.as_value()[:look.info.shape().size]),
            look.ready.eq(init_done),
        ]
        out = Signal(TAGS)                 # outstanding
        rest = Signal(TAGS)                # timed out, resting
        m.d.comb += look.outstanding.eq(out.bit_select(look.tag, 1))
        # Requests end when their last completion's data is in BAR2 (unless
        # the scanner ended them meanwhile), or when they time out.
        done = look.done
        cpl_end = look.finish & out.bit_select(done.tag, 1)
        # The timeout scanner visits one tag a cycle. A tag rests until
        # twice the timeout after it was sent.
        scan = Signal(TAG_BITS)
        m.d.sync += scan.eq(scan + 1)
        m.d.comb += info_scan.addr.eq(scan)
        scanned = info_scan.data
        age = Signal(32)
        m.d.comb += age.eq(now - scanned.time)
        s_busy = cpl_end | (look.held & (look.held_tag == scan))
        time_out = out.bit_select(scan, 1) & (age > self.timeout) & ~s_busy & init_done
        rested = rest.bit_select(scan, 1) & (age > (self.timeout << 1)) & ~cpl_end & init_done
        one = Const(1, TAGS)
        set_out = Mux(alloc.take, one << alloc.tag, 0)
        clr_out = Mux(cpl_end, one << done.tag, 0) | Mux(time_out, one << scan, 0)
        to_rest = Mux(time_out, one << scan, 0) | Mux(cpl_end & done.discontinued,
                                                      one << done.tag, 0)
        # An abort ends every outstanding read as a timeout does: its tag rests.
        aborted = Mux(self.aborting, out & ~clr_out, 0)
        m.d.sync += [
            out.eq(Mux(self.aborting, 0, (out & ~clr_out) | set_out)),
            rest.eq((rest | to_rest | aborted) & ~Mux(rested, one << scan, 0)),
        ]
        credits = Signal(range(self.cpl_credits + 257))
        outstanding = Signal(range(TAGS + 1))
        ended_credits = Mux(cpl_end, done.credits, Mux(time_out, scanned.credits, 0))
        m.d.sync += [
            credits.eq(Mux(self.aborting, 0,
                           credits + Mux(alloc.take, alloc.info.credits, 0) - ended_credits)),
            outstanding.eq(Mux(self.aborting, 0, outstanding + alloc.take - (cpl_end | time_out))),
        ]
        m.d.comb += [
            alloc.credits.eq(credits),
            self.ended.valid.eq(cpl_end | time_out),
            self.ended.slot.eq(Mux(cpl_end, done.slot, scanned.slot)),
            self.ended.error.eq(Mux(cpl_end, done.error, DmaStatus.TIMEOUT)),
            free.eq((cpl_end & ~done.discontinued) | rested),
            free_tag.eq(Mux(cpl_end & ~done.discontinued, done.tag, scan)),
            self.reads_out.eq(outstanding),
        ]
        return m

    def _pools(self, m):
        """Free tags in two pools, filled at reset: tags below 32 are legal
        always, the others only while Extended Tag Field Enable is set.
        Returns (filled, free: a tag is freed, free_tag)."""
        m.submodules.tags_lo = lo = SyncFIFO(width=TAG_BITS, depth=LOW_TAGS)
        m.submodules.tags_hi = hi = SyncFIFO(width=TAG_BITS, depth=TAGS - LOW_TAGS)
        init = Signal(range(TAGS + 1))
        init_done = init == TAGS
        free, free_tag = Signal(), Signal(TAG_BITS)
        push_tag = Mux(init_done, free_tag, init[:TAG_BITS])
        push = ~init_done | free
        m.d.comb += [
            lo.w_data.eq(push_tag), lo.w_en.eq(push & (push_tag < LOW_TAGS)),
            hi.w_data.eq(push_tag), hi.w_en.eq(push & (push_tag >= LOW_TAGS)),
        ]
        with m.If(~init_done):
            m.d.sync += init.eq(init + 1)
        use_hi = ~lo.r_rdy & self.ext_tags
        alloc = self.alloc
        m.d.comb += [
            alloc.ready.eq(init_done & (lo.r_rdy | (use_hi & hi.r_rdy))),
            alloc.tag.eq(Mux(lo.r_rdy, lo.r_data, hi.r_data)),
            lo.r_en.eq(alloc.take & lo.r_rdy),
            hi.r_en.eq(alloc.take & ~lo.r_rdy),
        ]
        return init_done, free, free_tag


class RqArbiter(wiring.Component):
    """Shares RQ between the read requests and the write packets: a read
    request goes between two write packets; the choice holds while a beat
    is offered and not taken. An abort drops a read request not yet on RQ
    (its tag rests with the others)."""

    def __init__(self, data_width):
        self.width, self.n = data_width, data_width // 32
        rq = ports.axis_signature(data_width, sideband(data_width).rq_user)
        super().__init__({
            "request": In(stream.Signature(READ_REQUEST)),
            "packet": In(rq), "packet_mid": In(1),
            "rq": Out(rq),
            "bus_master": In(1), "aborting": In(1),
            "shown": Out(1),               # the packet's beat was offered last cycle, not taken
            "idle": Out(1),                # no read request waiting
        })

    def elaborate(self, platform):
        m = Module()
        n, w, rq, pk = self.n, self.width, self.rq, self.packet
        valid = Signal()                   # the read request waiting
        hdr = Signal(layouts.RQ_DESCRIPTOR)
        fbe, lbe = Signal(4), Signal(4)
        beat = Signal()                    # its second beat (64-bit interface)
        req = self.request
        m.d.comb += req.ready.eq(~valid)
        with m.If(req.valid & req.ready):
            m.d.sync += [valid.eq(1), beat.eq(0),
                         hdr.address.eq(req.payload.addr[2:]), hdr.dw_count.eq(req.payload.dw),
                         hdr.req_type.eq(ReqType.MEM_READ), hdr.tag.eq(req.payload.tag),
                         fbe.eq(req.payload.fbe), lbe.eq(req.payload.lbe)]
        last = beat == (0 if n >= 4 else 1)
        owner_rd = Signal()                # registered choice
        hold = Signal()                    # the beat offered last cycle was not taken
        cut = self.aborting & valid & ~beat & ~(hold & owner_rd)
        ok = valid & (self.bus_master | beat) & ~cut
        sel_rd = Signal()
        with m.If(self.packet_mid):
            m.d.comb += sel_rd.eq(0)
        with m.Elif(beat | hold):
            m.d.comb += sel_rd.eq(Mux(beat, 1, owner_rd))
        with m.Else():
            m.d.comb += sel_rd.eq(ok)
        keep = Const((1 << min(4, n)) - 1, n)
        rd_data = hdr.as_value().word_select(beat, w) if n == 2 else hdr
        tvalid = Mux(sel_rd, ok, pk.tvalid)
        m.d.comb += [
            rq.tvalid.eq(tvalid),
            rq.tdata.eq(Mux(sel_rd, rd_data, pk.tdata)),
            rq.tkeep.eq(Mux(sel_rd, keep, pk.tkeep)),
            rq.tlast.eq(Mux(sel_rd, last, pk.tlast)),
            rq.tuser.eq(Mux(sel_rd, rq_tuser(w, ~beat, last, keep, fbe, lbe, Const(0, 6)),
                            pk.tuser)),
            pk.tready.eq(~sel_rd & rq.tready),
            self.shown.eq(hold & ~owner_rd),
            self.idle.eq(~valid),
        ]
        m.d.sync += [owner_rd.eq(sel_rd), hold.eq(tvalid & ~rq.tready)]
        with m.If(sel_rd & ok & rq.tready):
            with m.If(last):
                m.d.sync += [valid.eq(0), beat.eq(0)]
            with m.Else():
                m.d.sync += beat.eq(1)
        with m.If(cut):
            m.d.sync += valid.eq(0)
        return m


class CompletionReceiver(wiring.Component):
    """Writes the completions' data into BAR2, a window of N dwords a beat,
    and tells the tag table when a request ends."""

    def __init__(self, data_width, local_bits):
        self.width, self.n = data_width, data_width // 32
        self.local_bits = local_bits
        super().__init__({
            "rc": In(ports.axis_signature(data_width, sideband(data_width).rc_user)),
            "tags": Out(tag_lookup_signature(local_bits)),
            "mem": Out(axi_write_signature(local_bits, data_width, 1)),
            "aborting": In(1),
            "busy": Out(1),
        })

    def _decode(self, m, beat):
        """This completion, from its descriptor and the tag table: where its
        payload goes and how it ends its request."""
        n, lb, rc, tags = self.n, self.local_bits, self.rc, self.tags
        wb = self.width // 8
        d01 = Signal(64)
        with m.If(rc.tvalid & rc.tready & (beat == 0)):
            m.d.sync += d01.eq(rc.tdata[:64])
        desc = data.View(layouts.RC_DESCRIPTOR, rc.tdata[:96] if n >= 4
                         else Cat(d01, rc.tdata[:32]))
        m.d.comb += tags.tag.eq(desc.tag[:TAG_BITS])
        lp = Signal(lb)                    # BAR2 byte of payload byte 0
        m.d.comb += lp.eq(tags.info.lbase + Cat(Const(0, 2), desc.lower_address[2:12]))
        carried = Signal(13)
        m.d.comb += carried.eq((desc.dw_count << 2) - desc.lower_address[:2])
        # The hard IP's error codes (PG213): MISMATCH and INVALID_TAG are not
        # completions of ours; TIMEOUT, its completion timeout fired.
        err, status = desc.error_code, desc.status
        good = (status == CplStatus.SC) & (err == RcErrorCode.NORMAL_TERMINATION) & ~desc.poisoned
        not_ours = ((err == RcErrorCode.MISMATCH) | (err == RcErrorCode.INVALID_TAG)
                    | ~tags.outstanding)
        # Window 0 starts at packet byte 12 - (lp mod 4): byte offset in its beat.
        shift = Signal(range(wb))
        m.d.comb += shift.eq((12 - lp[:2] - wb) if wb <= 12 else (12 - lp[:2]))
        nbytes = Signal(13)
        m.d.comb += nbytes.eq(Mux(desc.byte_count < carried, desc.byte_count, carried))
        return {
            "lo": desc.lower_address[:2] + lp[:2],
            "bytes": nbytes,
            "d0": lp[2:],
            "shift": shift,
            "write": good & ~not_ours & ~self.aborting & (nbytes != 0),
            "ours": ~not_ours,
            "last": ~not_ours & ((status != CplStatus.SC) | (err == RcErrorCode.TIMEOUT)
                                 | (desc.byte_count <= carried)),
            "slot": tags.info.slot, "tag": desc.tag[:TAG_BITS], "credits": tags.info.credits,
            "error": Mux(status == CplStatus.UR, DmaStatus.UNSUPPORTED_REQUEST,
                     Mux(status == CplStatus.CA, DmaStatus.COMPLETER_ABORT,
                     Mux(status != CplStatus.SC, DmaStatus.BAD_COMPLETION,
                     Mux(err == RcErrorCode.TIMEOUT, DmaStatus.TIMEOUT,
                     Mux(desc.poisoned | (err == RcErrorCode.POISONED), DmaStatus.POISONED,
                     Mux(err != RcErrorCode.NORMAL_TERMINATION, DmaStatus.BAD_COMPLETION,
                         DmaStatus.OK)))))),
        }

    def elaborate(self, platform):
        m = Module()
        n, w, lb, rc = self.n, self.width, self.local_bits, self.rc
        wb = w // 8
        fire = Signal()
        m.d.comb += fire.eq(rc.tvalid & rc.tready)
        beat = Signal(range(3))            # beat index in the completion, saturating
        hdr_beat = 0 if n >= 4 else 1      # the beat that completes the 3-dword descriptor
        now = self._decode(m, beat)
        # Per completion, from its descriptor beat on: computed at that beat,
        # registered for the beats after it.
        reg = {"lo": Signal(range(4 * n + 8)), "bytes": Signal(13), "d0": Signal(lb - 2),
               "shift": Signal(range(wb)), "write": Signal(), "ours": Signal(), "last": Signal(),
               "slot": Signal(4), "tag": Signal(TAG_BITS), "error": Signal(4),
               "credits": Signal(CREDIT_BITS)}
        at_hdr = beat == hdr_beat
        cur = {k: Mux(at_hdr, now[k], reg[k]) for k in reg}
        with m.If(fire & at_hdr):
            m.d.sync += [reg[k].eq(now[k]) for k in reg]
        with m.If(self.aborting):          # the rest of a completion under way is dropped
            m.d.sync += reg["write"].eq(0)
        prev = Signal(w)
        m.d.sync += prev.eq(Mux(fire, rc.tdata, prev))
        with m.If(fire):
            with m.If(rc.tlast):
                m.d.sync += beat.eq(0)
            with m.Elif(beat != 2):
                m.d.sync += beat.eq(beat + 1)
        m.submodules.writer = writer = AxiWriter(w, lb, 12)
        wiring.connect(m, writer.axi, wiring.flipped(self.mem))
        # Requests waiting for their writes' responses: enough for DRAM's latency.
        m.submodules.fin = fin = SyncFIFO(width=self.tags.done.shape().size + 8, depth=32)
        need_cmd = at_hdr & now["write"]
        beat_writes = (beat >= 1 + (0 if wb > 12 else 1)) & (beat != 0) & reg["write"]
        pend, pend_ok = self._windows(m, fire, beat, at_hdr, cur, reg, prev, writer, fin)
        self._command(m, writer, now, fire & need_cmd)
        # Back-pressure: memory takes the command and the windows; a pending
        # window goes out at the latest with the next completion's first
        # beat (which writes none), before its second.
        m.d.comb += [rc.tready.eq((~need_cmd | writer.cmd.ready)
                                  & (~beat_writes | writer.beats.ready)
                                  & ~(pend & ((beat != 0) | ~pend_ok)) & self.tags.ready),
                     self.busy.eq(pend | (beat != 0) | fin.r_rdy | ~writer.idle)]
        return m

    def _command(self, m, writer, now, push):
        """The completion's run of dwords in BAR2, for the writer: window 0
        starts at dword d0; its bytes are [lo, lo + bytes) from there."""
        c, logn = writer.cmd.payload, log2(self.n)
        skip = now["lo"] >> 2
        m.d.comb += [
            writer.cmd.valid.eq(push),
            c.first.eq(now["d0"] + skip), c.lane0.eq(now["d0"][:logn] if logn else 0),
            c.count.eq(((now["lo"] + now["bytes"] + 3) >> 2) - skip),
        ]

    def _window_mask(self, cur, i):
        """Valid bytes of window i: [lo, lo + bytes) from window 0's start."""
        wb = self.width // 8
        lo = cur["lo"] - wb * i
        hi = lo + cur["bytes"]
        ones = Const((1 << wb) - 1, wb)
        bits = log2(wb) + 1
        below_hi = Mux(hi <= 0, 0, Mux(hi >= wb, ones, (ones >> (wb - hi).as_unsigned()[:bits])[:wb]))
        from_lo = Mux(lo <= 0, ones, Mux(lo >= wb, 0, (ones << lo.as_unsigned()[:bits])[:wb]))
        return below_hi & from_lo

    def _windows(self, m, fire, beat, at_hdr, cur, reg, prev, writer, fin):
        """Window writes: window i when beat i + 1 + kshift arrives; the last
        one, after the completion's last beat, waits in `pend`. A request
        ends once memory has the writes before it. Returns pend."""
        n, w, rc, tags = self.n, self.width, self.rc, self.tags
        wb = w // 8
        kshift = 0 if wb > 12 else 1       # beats before the one window 0 starts in
        win_idx = Signal(range((4 + 1024) // n + 4))
        pend = Signal()
        pend_data = Signal(w)
        pend_mask = Signal(wb)
        pend_cmd = Signal()                # pend belongs to a command of the writer's
        done = Signal(tags.done.shape())
        pend_end = Signal()                # the request ends when `pend` is written

        i_s = Signal(range(-4, 2048))      # signed window arithmetic
        m.d.comb += i_s.eq(win_idx)
        # The window completed by this beat: beats (t - 1, t), t >= 1 + kshift.
        this_win = Signal(w)
        m.d.comb += this_win.eq(Cat(prev, rc.tdata).bit_select(reg["shift"] * 8, w))
        tail_win = Signal(w)
        m.d.comb += tail_win.eq(Cat(rc.tdata, Const(0, w)).bit_select(cur["shift"] * 8, w))
        beat_writes = Signal()
        m.d.comb += beat_writes.eq(fire & (beat >= 1 + kshift) & (beat != 0))
        w_valid, w_data, w_mask = Signal(), Signal(w), Signal(wb)
        # The beat's own window, else the pending one (once a request it
        # ends has room in the queue of requests ending).
        pend_go = pend & ~beat_writes & (~pend_end | fin.w_rdy)
        with m.If(beat_writes):
            m.d.comb += [w_valid.eq(reg["write"]), w_data.eq(this_win),
                         w_mask.eq(self._window_mask(cur, i_s))]
        with m.Else():
            m.d.comb += [w_valid.eq(pend_go & pend_cmd), w_data.eq(pend_data),
                         w_mask.eq(pend_mask)]
        with m.If(fire & at_hdr):
            m.d.sync += win_idx.eq(0)
        with m.Elif(beat_writes):
            m.d.sync += win_idx.eq(win_idx + 1)
        pend_ok = (~pend_end | fin.w_rdy) & (~pend_cmd | writer.beats.ready)
        written = pend_go & (~pend_cmd | writer.beats.ready)
        with m.If(written):
            m.d.sync += pend.eq(0)
        # A command is open from its completion's descriptor to its pend.
        cmd_open = Signal()
        open_now = cmd_open | (writer.cmd.valid & writer.cmd.ready)
        with m.If(writer.cmd.valid & writer.cmd.ready):
            m.d.sync += cmd_open.eq(1)
        with m.If(fire & rc.tlast):
            m.d.sync += [cmd_open.eq(0), pend_cmd.eq(open_now)]
            # The tail: window win_idx (or 0 when the descriptor beat is the last).
            tail_i = Mux(at_hdr, 0, win_idx + beat_writes)
            # Discontinue, in a completion's last beat: the hard IP found its
            # data corrupt (PG213). The beats before it are already in BAR2,
            # so the request ends POISONED and its tag rests, as after a
            # timeout, so that the rest of its completions find it unused.
            disc = rc.tuser[sideband(w).rc_discontinue] & cur["ours"]
            m.d.sync += [
                pend.eq(1), pend_data.eq(tail_win),
                pend_mask.eq(Mux(cur["write"] & ~disc, self._window_mask(cur, tail_i), 0)),
                pend_end.eq(cur["last"] | disc), done.discontinued.eq(disc),
                done.slot.eq(cur["slot"]), done.tag.eq(cur["tag"]),
                done.error.eq(Mux(disc & (cur["error"] == DmaStatus.OK), DmaStatus.POISONED,
                                  cur["error"])),
                done.credits.eq(cur["credits"]),
            ]
        with m.If(self.aborting):
            m.d.sync += pend_mask.eq(0)
        self._finish(m, writer, fin, written & pend_end, done)
        m.d.comb += [tags.held.eq(pend), tags.held_tag.eq(done.tag)]
        b = writer.beats
        m.d.comb += [b.valid.eq(w_valid), b.payload.data.eq(w_data), b.payload.be.eq(w_mask),
                     b.payload.last.eq(~beat_writes)]
        return pend, pend_ok

    def _finish(self, m, writer, fin, ended, done):
        """Requests end in order, each once the writer has acknowledged the
        commands before it (a ticket: commands handed to it, mod 256)."""
        issued = Signal(8)
        with m.If(writer.cmd.valid & writer.cmd.ready):
            m.d.sync += issued.eq(issued + 1)
        head_done = data.View(self.tags.done.shape(), fin.r_data[8:])
        in_memory = ~(writer.done - fin.r_data[:8])[7]
        m.d.comb += [
            fin.w_en.eq(ended), fin.w_data.eq(Cat(issued, done)),
            self.tags.finish.eq(fin.r_rdy & in_memory), self.tags.done.eq(head_done),
            fin.r_en.eq(fin.r_rdy & in_memory),
        ]
