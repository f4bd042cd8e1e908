"""Completer: answers the queued non-posted requests on CC.

A request is split into completions at the Read Completion Boundary, none
carrying more than Max Payload Size (both from the hard IP's
configuration outputs), with Byte Count and Lower Address as the PCIe
rules give them; an unsupported request gets one completion with status
UR and no data.

    queue -> request register R --> jobs (one per completion, in order)
                                +-> read commands: memory, registers
    jobs + data from the AxiReaders -> the CC descriptor laid over the
                                       first lanes -> output FIFO -> CC

Memory is read through an AxiReader (hw/core/memport.py) that places
the payload after the descriptor's 3 dwords; its commands run ahead of
the completions being sent, up to ports.READS_IN_FLIGHT completions, so
memory latency overlaps. A read of memory waits until the BAR2 writes
before it are in memory (its ticket against `mem_done`): a read never
passes a posted write. Registers are read the same way, from the
register banks.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.core import axi, layouts, ports
from hw.core.memport import AxiReader
from hw.spec.usp import CplStatus, sideband

NP_READ, NP_UR = ports.NP_READ, ports.NP_UR
EVENTS = ports.counter_events_layout(("STAT_CPLS",))


def _lsb_index(be):
    """Index of the lowest set bit of a 4-bit byte enable (0 when none)."""
    return Mux(be[0], 0, Mux(be[1], 1, Mux(be[2], 2, Mux(be[3], 3, 0))))


def _msb_index(be):
    return Mux(be[3], 3, Mux(be[2], 2, Mux(be[1], 1, 0)))


class Completer(wiring.Component):
    def __init__(self, p):
        self.p = p
        super().__init__({
            "np": In(ports.np_stream_signature(p)),
            "queued": Out(range(p.np_queue_depth + 1)),     # requests waiting
            "max_payload": In(3), "rcb_128": In(1),         # Device Control, Link Control
            "mem": Out(ports.memory_read_signature(p)),
            "mem_done": In(8),                              # BAR2 writes in memory
            "regs": Out(axi.axi_read_signature(ports.log2(p.bar0_size), p.data_width, 1)),
            "cc": Out(ports.axis_signature(p.data_width, sideband(p.data_width).cc_user)),
            "events": Out(EVENTS),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.queue = queue = SyncFIFO(width=ports.np_request_layout(p).size,
                                              depth=p.np_queue_depth)
        m.d.comb += [queue.w_data.eq(self.np.payload), queue.w_en.eq(self.np.valid),
                     self.np.ready.eq(queue.w_rdy), self.queued.eq(queue.level)]
        free = Signal()
        take, cpl = self._request(m, queue, free)
        job = self._jobs(m, take, cpl, free)
        self._output(m, job)
        m.d.comb += self.events.stat_cpls.eq(take)
        return m

    def _mps_dwords(self, m):
        mps = Signal(11)
        with m.Switch(self.max_payload):
            for code in range(6):
                with m.Case(code):
                    m.d.comb += mps.eq(min(32 << code, self.p.max_payload_supported // 4))
            with m.Default():
                m.d.comb += mps.eq(32)
        return mps

    def _request(self, m, queue, free):
        """Request register R: the request being split. Returns (take: the
        next completion is queued now, that completion's fields)."""
        p = self.p
        addr_bits = ports.dword_address_bits(p)
        q = data.View(ports.np_request_layout(p), queue.r_data)
        r = Signal(ports.np_request_layout(p))
        valid = Signal()
        dw = Signal(addr_bits)            # dword address of the next completion
        rem_dw = Signal(11)               # dwords left to send
        rem_bytes = Signal(13)            # Byte Count of the next completion
        first = Signal()

        # Byte count of a whole memory read, from its byte enables.
        one = q.dw_count == 1
        q_bytes = Signal(13)
        with m.If(one & (q.fbe == 0)):
            m.d.comb += q_bytes.eq(1)     # zero-length read
        with m.Else():
            m.d.comb += q_bytes.eq(((q.dw_count - 1) << 2) + _msb_index(Mux(one, q.fbe, q.lbe))
                                   + 1 - _lsb_index(q.fbe))

        # The next completion, from R.
        ur = r.kind == NP_UR
        lead = Mux(first & ~ur, _lsb_index(r.fbe), 0)
        limit = self._mps_dwords(m) - (dw & Mux(self.rcb_128, 31, 15))
        c_dw = Signal(11)                 # its payload dwords
        m.d.comb += c_dw.eq(Mux(ur, 0, Mux(rem_dw > limit, limit, rem_dw)))
        last = ur | (rem_dw <= limit)
        lower = Signal(7)
        with m.If(ur & r.bc_fixed):
            m.d.comb += lower.eq(0)
        with m.Else():
            m.d.comb += lower.eq(Cat(Mux(ur, _lsb_index(r.fbe), lead)[:2], dw[:5]))
        cc = Signal(layouts.CC_DESCRIPTOR)   # the fields not named here stay 0
        m.d.comb += [
            cc.lower_address.eq(lower), cc.byte_count.eq(Mux(ur & r.bc_fixed, r.bc, rem_bytes)),
            cc.locked.eq(r.locked & ur), cc.dw_count.eq(c_dw),
            cc.status.eq(Mux(ur, Const(CplStatus.UR, 3), Const(CplStatus.SC, 3))),
            cc.requester_id.eq(r.req_id), cc.tag.eq(r.tag), cc.completer_function.eq(r.func),
            cc.tc.eq(r.tc), cc.attr.eq(r.attr),
        ]

        take = Signal()
        m.d.comb += take.eq(valid & free)
        done = take & last
        load = Signal()
        m.d.comb += [load.eq(queue.r_rdy & (~valid | done)), queue.r_en.eq(load)]
        with m.If(load):
            m.d.sync += [valid.eq(1), dw.eq(q.dw_addr), rem_dw.eq(q.dw_count),
                         rem_bytes.eq(q_bytes), first.eq(1), r.eq(q)]
        with m.Elif(done):
            m.d.sync += valid.eq(0)
        with m.Elif(take):
            m.d.sync += [dw.eq(dw + c_dw), rem_dw.eq(rem_dw - c_dw),
                         rem_bytes.eq(rem_bytes - ((c_dw << 2) - lead)), first.eq(0)]
        cpl = {"hdr": cc, "dw": c_dw, "first": dw, "bar0": r.bar0, "ur": ur,
               "ticket": r.ticket}
        return take, cpl

    def _jobs(self, m, take, cpl, free):
        """A job per completion, in order, and for one with data a read
        command to memory or the registers. Returns the oldest job."""
        p, n = self.p, self.p.lanes
        logn = ports.log2(n)
        depth = ports.READS_IN_FLIGHT
        aw_mem, aw_regs = ports.memory_addr_bits(p), ports.log2(p.bar0_size)
        m.submodules.mem_reader = mem = AxiReader(p.data_width, aw_mem,
                                                  ports.TLP_DWORDS_BITS, depth=depth)
        m.submodules.reg_reader = regs = AxiReader(p.data_width, aw_regs,
                                                   ports.TLP_DWORDS_BITS, depth=depth)
        wiring.connect(m, mem.axi, wiring.flipped(self.mem))
        wiring.connect(m, regs.axi, wiring.flipped(self.regs))
        job_layout = data.StructLayout({"hdr": 96, "beats": ports.TLP_DWORDS_BITS,
                                        "mem": 1, "regs": 1, "last_keep": n})
        m.submodules.jobs = jobs = SyncFIFO(width=job_layout.size, depth=depth)
        total = cpl["dw"] + 3
        beats = (total + n - 1) >> logn
        last_keep = Signal(n)
        for k in range(1, n + 1):
            with m.If((((total - 1) & (n - 1)) + 1) == k):
                m.d.comb += last_keep.eq((1 << k) - 1)
        j = data.View(job_layout, jobs.w_data)
        m.d.comb += [j.hdr.eq(cpl["hdr"]), j.beats.eq(beats), j.last_keep.eq(last_keep),
                     j.mem.eq(~cpl["ur"] & ~cpl["bar0"]), j.regs.eq(~cpl["ur"] & cpl["bar0"])]
        # A memory read waits for the writes before it (mod 256: fewer are ever in flight).
        written = ~(self.mem_done - cpl["ticket"])[7]
        for reader, wanted in ((mem, j.mem), (regs, j.regs)):
            c = reader.cmd.payload
            m.d.comb += [c.first.eq(cpl["first"]), c.count.eq(cpl["dw"]), c.lead.eq(3),
                         c.beats.eq(beats), reader.cmd.valid.eq(take & wanted)]
        m.d.comb += [
            free.eq(jobs.w_rdy & Mux(j.mem, mem.cmd.ready & written,
                                     Mux(j.regs, regs.cmd.ready, 1))),
            jobs.w_en.eq(take),
        ]
        return {"fifo": jobs, "job": data.View(job_layout, jobs.r_data),
                "mem": mem.out, "regs": regs.out}

    def _output(self, m, job):
        """The oldest job's beats: data from its reader (none for UR), the
        descriptor over the first lanes, into the output FIFO; then CC."""
        p, n, cc = self.p, self.p.lanes, self.cc
        m.submodules.out = out = SyncFIFO(width=p.data_width + n + 1, depth=4)
        jobs, jb = job["fifo"], job["job"]
        beat = Signal(ports.TLP_DWORDS_BITS)
        src_valid = Mux(jb.mem, job["mem"].valid, Mux(jb.regs, job["regs"].valid, 1))
        src_data = Mux(jb.mem, job["mem"].payload.data, job["regs"].payload.data)
        last = beat == jb.beats - 1
        move = jobs.r_rdy & src_valid & out.w_rdy
        m.d.comb += [job["mem"].ready.eq(jobs.r_rdy & jb.mem & out.w_rdy),
                     job["regs"].ready.eq(jobs.r_rdy & jb.regs & out.w_rdy),
                     jobs.r_en.eq(move & last)]
        with m.If(move):
            m.d.sync += beat.eq(Mux(last, 0, beat + 1))
        hdr_beat = Mux(beat > 2, 2, beat)
        lanes = Mux(jb.mem | jb.regs, src_data, 0)
        out_lanes = layouts.header_over_lanes(m, "cc_lane", lanes, jb.hdr, hdr_beat, 3, n)
        m.d.comb += [out.w_data.eq(Cat(*out_lanes, Mux(last, jb.last_keep, (1 << n) - 1), last)),
                     out.w_en.eq(move)]

        keep = out.r_data[p.data_width:p.data_width + n]
        last = out.r_data[p.data_width + n]
        sop = Signal(init=1)
        m.d.comb += [
            cc.tdata.eq(out.r_data[:p.data_width]), cc.tkeep.eq(keep), cc.tlast.eq(last),
            cc.tvalid.eq(out.r_rdy), out.r_en.eq(cc.tready),
        ]
        with m.If(out.r_rdy & cc.tready):
            m.d.sync += sop.eq(last)
        if p.data_width == 512:
            sb = sideband(p.data_width)
            eop_ptr = Signal(4)
            for k in range(n):
                with m.If(keep[k]):
                    m.d.comb += eop_ptr.eq(k)
            m.d.comb += [
                cc.tuser[sb.cc_is_sop].eq(sop), cc.tuser[sb.cc_is_eop].eq(last),
                cc.tuser[sb.cc_eop_ptr:sb.cc_eop_ptr + 4].eq(eop_ptr),
            ]
