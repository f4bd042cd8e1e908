"""The virtual board's simulation side: the RTL behind QEMU's p2p-dax-board device.

    python -m hw.virtual.cosim --socket PATH [--params JSON]

builds the simulation (hw.sim.tb.runner, cached like every other testbench) and
runs it until QEMU disconnects. The RTL is endpoint A of the simulation
toplevel, behind the same UltraScale+ hard-IP model (cocotbext-pcie) as in
every other test, with the same PCIe-rule checkers on its interfaces; the
model hangs off a cocotbext-pcie root complex whose host memory is QEMU:

    QEMU vCPU --MMIO_READ/WRITE--> root complex --MemRd/MemWr--> model --CQ--> RTL
    QEMU      <--MMIO_READ_REPLY-- root complex <--CplD--------- model <--CC-- RTL
    QEMU      --CFG_WRITE--------> root complex --CfgWr--------> model (cfg_* to the RTL)
    QEMU DMA  <--DMA_READ/WRITE--- root complex <--MemRd/MemWr-- model <--RQ-- RTL
    QEMU      --DMA_READ_REPLY---> root complex --CplD---------> model --RC--> RTL

The guest's BAR addresses are not forwarded: the root complex enumerates
the model itself, with its windows where the guest never sends DMA (inside
q35's MMCONFIG range and at 2^63), and a guest access to BAR n at offset o
becomes an access to the model's BAR n at o. Everything the RTL sends
upstream goes to QEMU; the root complex splits its read completions at its
RCB and the Max Payload Size the guest set. The socket protocol is
hw/virtual/protocol.py.

P2P_DAX_FAULT=crash@OFFSET (or hang@OFFSET) in the environment makes a guest
write to BAR2 at OFFSET kill the simulation (or make it stop answering first),
for the tests of what QEMU and the guest see when the simulation goes away.
P2P_DAX_FAULT=abort@OFFSET makes each guest write to BAR2 at OFFSET arm a
failure instead: the RTL's next DMA read gets a Completer Abort from the root
complex, as if QEMU had refused it, for the tests of a transfer that the
board reports as failed.

When QEMU goes away the simulation ends, and the test fails if a checker saw
a PCIe rule broken during the session (the log names it).
"""

import argparse
import collections
import json
import logging
import os
import select
import socket
import sys
import time

import cocotb
from cocotb.triggers import ClockCycles, Event, First, RisingEdge, Timer
from cocotbext.pcie.core import RootComplex

from hw.spec import regmap
from hw.sim.tb.topology import Endpoint, Topology, params_from_env
from hw.virtual import PARAMS, protocol
from hw.virtual.protocol import HEADER, Msg, Status

DMA_ABORT = regmap.offset("DMA_ABORT")

# The root complex's windows, where the guest has nothing to DMA to: inside
# q35's MMCONFIG range (0xb0000000, 256 MiB) below 4 GiB, and 2^63.
RC_MEM_BASE = 0xB000_0000
# Poll the socket without blocking for this many rounds after the last sign of
# work; then block in select() (the simulator stands still) until QEMU sends.
IDLE_ROUNDS = 200
ROUND_CYCLES = 4
BLOCK_SECONDS = 0.05
WAKE_CYCLES = 256
# At QEMU's exit, rounds of WAKE_CYCLES for the writes it sent to land.
DRAIN_ROUNDS = 100
SPIN_POLLS = 2000
SPIN_SECONDS = 0.0005


class Link:
    """The socket to QEMU: whole messages in, buffered non-blocking sends out."""

    def __init__(self, sock):
        self.sock = sock
        sock.setblocking(False)
        self.rx = bytearray()
        self.tx = bytearray()
        self.closed = False
        self.messages_in = self.messages_out = 0

    def send(self, kind, addr=0, arg=0, ident=0, data=b"", length=None):
        self.tx += protocol.pack(kind, addr, arg, ident, data, length)
        self.messages_out += 1

    def _send_some(self):
        if not self.tx:
            return
        try:
            del self.tx[:self.sock.send(self.tx)]
        except BlockingIOError:
            pass
        except OSError:
            self.closed = True

    def poll(self, timeout):
        """Move bytes both ways (waiting up to `timeout` seconds for QEMU);
        return the complete messages received, as (header tuple, data)."""
        if self.closed:
            return []
        self._send_some()               # replies first: QEMU may be waiting for one
        if self.closed:
            return []
        wr = [self.sock] if self.tx else []
        readable, writable, _ = select.select([self.sock], wr, [], timeout)
        if writable:
            self._send_some()
        if readable:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                chunk = None
            except OSError:
                chunk = b""
            if chunk == b"":
                self.closed = True
            elif chunk:
                self.rx += chunk
        out = []
        while len(self.rx) >= HEADER.size:
            kind, length, addr, arg, ident = HEADER.unpack_from(self.rx)
            has_data = kind in (Msg.MMIO_WRITE, Msg.CFG_WRITE) or \
                (kind == Msg.DMA_READ_REPLY and arg == Status.OK)
            size = HEADER.size + (length if has_data else 0)
            if len(self.rx) < size:
                break
            out.append(((Msg(kind), length, addr, arg, ident), bytes(self.rx[HEADER.size:size])))
            del self.rx[:size]
        self.messages_in += len(out)
        return out

    def flush(self, timeout=5.0):
        end = time.monotonic() + timeout
        self.sock.setblocking(True)
        self.sock.settimeout(timeout)
        try:
            while self.tx and time.monotonic() < end:
                del self.tx[:self.sock.send(self.tx)]
        except OSError:
            pass


class QemuMemory:
    """The root complex's host memory, in place of its AddressSpace once it
    has enumerated: every request the RTL sends upstream goes to QEMU's
    bus-master address space."""

    def __init__(self, board):
        self.board = board

    def find_regions(self, address, length=0):
        return [(0, 2**64, 0, self)]       # QEMU decides what is there

    async def read(self, address, length, **kwargs):
        data = bytearray()
        while len(data) < length:           # a request larger than one message
            n = min(length - len(data), protocol.MAX_DATA)
            data += await self.board.dma_read(address + len(data), n)
        return bytes(data)

    async def write(self, address, data, **kwargs):
        self.board.invalidate()             # an MSI-X message may say a DMA ended
        self.board.stats["dma_writes"] += 1
        self.board.stats["dma_write_bytes"] += len(data)
        for i in range(0, len(data), protocol.MAX_DATA):
            self.board.link.send(Msg.DMA_WRITE, address + i, data=data[i:i + protocol.MAX_DATA])
        self.board.wake.set()


class DmaError(Exception):
    pass


class VirtualBoard:
    """Endpoint A's RTL and hard-IP model behind a root complex whose host is QEMU."""

    def __init__(self, dut, params):
        self.dut = dut
        self.params = params
        self.log = logging.getLogger("cocotb.virtual_board")
        logging.getLogger("cocotb.pcie").setLevel(logging.ERROR)
        self.ep = Endpoint(dut, "a", params)
        self.rc = RootComplex()
        self.rc.mem_base = self.rc.mem_limit = RC_MEM_BASE
        self.rc.max_payload_size = 0            # 128 bytes until the guest sets MPS
        self.rc.max_read_request_size = 5
        self.rc.make_port().connect(self.ep.model)
        self.link = None
        self.requests = collections.deque()    # the guest's accesses, in order
        self.requests_event = Event()
        self.wake = Event()                     # the worker finished, or the RTL sent
        self.read_block = None                  # (BAR2 offset, bytes): see serve_guest
        self.generation = 0                     # bumped by whatever may change BAR2
        self.busy = 0                          # guest accesses under way in the RTL
        self.dma_waiting = {}                   # id -> [Event, status, data]
        self.next_dma_id = 0
        self.stats = collections.Counter()
        # P2P_DAX_FAULT=KIND@OFFSET: a guest write to BAR2 at OFFSET kills
        # the simulation (crash), first makes it stop answering (hang), or
        # makes the RTL's next DMA read fail (abort).
        fault = os.environ.get("P2P_DAX_FAULT")
        self.fault = None
        self.abort_armed = False
        if fault:
            kind, _, offset = fault.partition("@")
            if kind not in ("crash", "hang", "abort") or not offset:
                raise ValueError(f"P2P_DAX_FAULT={fault}: use crash@OFFSET, hang@OFFSET or "
                                 "abort@OFFSET")
            self.fault = (kind, int(offset, 0))

    def check_layout(self):
        func = self.ep.function
        for name, cap, want in (("MSI-X", func.msix_cap, protocol.MSIX_CAP_OFFSET),
                                ("PCIe", func.pcie_cap, protocol.PCIE_CAP_OFFSET)):
            if cap.offset * 4 != want:
                raise RuntimeError(f"the hard-IP model has its {name} capability at "
                                   f"{cap.offset * 4:#x}, QEMU's device at {want:#x}: update "
                                   "hw/virtual/protocol.py")

    async def start(self):
        ep = self.ep
        await RisingEdge(ep.clk)
        while ep.rst.value == 1 or not ep.rst.value.is_resolvable:
            await Timer(10, "ns")
        await ClockCycles(ep.clk, 4)
        await self.rc.enumerate()
        ep.pci = self.rc.find_device(ep.function.pcie_id)
        self.rc.mem_address_space = QemuMemory(self)
        self.check_layout()

    # -- the RTL's requests, carried out by QEMU --

    async def dma_read(self, address, length):
        self.invalidate()
        if self.abort_armed:
            self.abort_armed = False
            self.stats["dma_reads_aborted"] += 1
            raise DmaError(f"DMA read of {length} bytes at {address:#x}: aborted, as "
                           "P2P_DAX_FAULT asked")
        ident = self.next_dma_id = (self.next_dma_id + 1) & 0xFFFFFFFF
        waiter = [Event(), None, b""]
        self.dma_waiting[ident] = waiter
        self.link.send(Msg.DMA_READ, address, ident=ident, length=length)
        self.wake.set()
        self.stats["dma_reads"] += 1
        self.stats["dma_read_bytes"] += length
        await waiter[0].wait()
        del self.dma_waiting[ident]
        if waiter[1] != Status.OK:
            # The root complex answers the RTL with a Completer Abort.
            raise DmaError(f"DMA read of {length} bytes at {address:#x}: "
                           f"{Status(waiter[1]).name if waiter[1] is not None else 'QEMU gone'}")
        return waiter[2]

    # -- the guest's accesses, one at a time, in order --
    #
    # BAR2 is prefetchable memory (the guest maps it write-combining: the
    # driver's PAT reservation): reads have no side effects, writes may be
    # combined. The bridge makes use of both, which is what makes
    # byte-by-byte guest access bearable in simulation: a BAR2 read fetches the aligned READ_BLOCK around it in
    # one request and serves the following reads from it until anything
    # could have changed BAR2 (any write, a BAR0 access, a configuration
    # write, any DMA traffic: the guest learns of a finished DMA through
    # BAR0 or an MSI-X write); consecutive BAR2 writes become one write of
    # up to Max Payload Size. BAR0 (registers) is never combined or cached.

    READ_BLOCK = 512

    def invalidate(self):
        self.read_block = None
        self.generation += 1

    def _cached(self, addr, length):
        if self.read_block is None:
            return None
        base, block = self.read_block
        if base <= addr and addr + length <= base + len(block):
            return block[addr - base:addr - base + length]
        return None

    def _mps(self):
        return 128 << self.ep.function.pcie_cap.max_payload_size

    def _inject(self, kind):
        """P2P_DAX_FAULT (tests of QEMU's side): the simulation dies, or
        stops answering until QEMU gives up on it, then dies."""
        self.log.error("P2P_DAX_FAULT: the simulation %s now, as asked",
                       "crashes" if kind == "crash" else "stops answering")
        if kind == "hang":
            self.link.sock.setblocking(True)
            while self.link.sock.recv(65536):
                pass
        os._exit(3)

    def queue_guest(self, message):
        (kind, length, addr, arg, ident), data = message
        if kind == Msg.MMIO_READ and arg == 2:
            hit = self._cached(addr, length)
            if hit is not None:             # nothing was written since the block was read
                self.stats["mmio_reads"] += 1
                self.stats["mmio_read_hits"] += 1
                self.link.send(Msg.MMIO_READ_REPLY, arg=Status.OK, ident=ident, data=hit)
                return
        if kind != Msg.MMIO_READ or arg != 2:
            self.invalidate()
        if kind == Msg.MMIO_WRITE and arg == 2 and self.requests:
            (pkind, plen, paddr, parg, _), pdata = self.requests[-1]
            end = paddr + len(pdata)
            if pkind == Msg.MMIO_WRITE and parg == 2 and end == addr and \
                    len(pdata) + len(data) <= self._mps() and \
                    paddr >> 12 == (addr + len(data) - 1) >> 12:
                self.requests[-1] = ((pkind, plen, paddr, parg, 0), pdata + data)
                self.stats["mmio_writes"] += 1
                return
        if kind == Msg.MMIO_WRITE:
            self.stats["mmio_writes"] += 1
            if arg == 0 and addr == DMA_ABORT:
                self.stats["dma_abort_writes"] += 1
            if self.fault and arg == 2 and addr == self.fault[1]:
                if self.fault[0] == "abort":
                    self.log.info("P2P_DAX_FAULT: the RTL's next DMA read will be aborted")
                    self.abort_armed = True
                else:
                    self._inject(self.fault[0])
        self.requests.append(message)
        self.requests_event.set()

    async def serve_guest(self):
        while True:
            while not self.requests:
                self.requests_event.clear()
                await self.requests_event.wait()
            (kind, length, addr, arg, ident), data = self.requests.popleft()
            self.busy += 1
            try:
                if kind == Msg.MMIO_READ:
                    await self._guest_read(length, addr, arg, ident)
                elif kind == Msg.MMIO_WRITE:
                    self.stats["write_tlps"] += 1
                    await self.rc.mem_region.write(self.ep.pci.bar_addr[arg] + addr, data)
                elif kind == Msg.CFG_WRITE:
                    self.stats["cfg_writes"] += 1
                    await self.ep.pci.config_write(addr, data)
                    # The root complex's completions follow the MPS the guest set.
                    self.rc.max_payload_size = self.ep.function.pcie_cap.max_payload_size
            finally:
                self.busy -= 1
                self.wake.set()

    async def _guest_read(self, length, addr, bar, ident):
        self.stats["mmio_reads"] += 1
        self.stats["read_tlps"] += 1
        base, size = addr, length
        if bar == 2:
            base = addr - addr % self.READ_BLOCK
            size = min(self.READ_BLOCK, self.params.bar2_size - base)
        generation = self.generation
        try:
            block = await self.rc.mem_region.read(self.ep.pci.bar_addr[bar] + base, size)
        except Exception as e:                  # UR or CA from the RTL
            self.log.warning("guest read BAR%d+%#x (%d bytes) failed: %s", bar, addr, length, e)
            self.link.send(Msg.MMIO_READ_REPLY, arg=Status.ABORT, ident=ident)
            return
        value = block[addr - base:addr - base + length]
        if bar == 2 and generation == self.generation:
            self.read_block = (base, block)
        self.link.send(Msg.MMIO_READ_REPLY, arg=Status.OK, ident=ident, data=value)
        self.log.debug("read reply id %d: %s", ident, value.hex())

    def dispatch(self, message):
        (kind, length, addr, arg, ident), data = message
        self.log.debug("from QEMU: %s len %d addr %#x arg %d id %d %s", kind.name, length, addr,
                       arg, ident, data[:8].hex())
        if kind in (Msg.MMIO_READ, Msg.MMIO_WRITE, Msg.CFG_WRITE):
            if kind != Msg.CFG_WRITE and arg not in (0, 2):
                raise RuntimeError(f"QEMU sent an access to BAR{arg}: protocol mismatch")
            self.queue_guest(message)
        elif kind == Msg.DMA_READ_REPLY:
            waiter = self.dma_waiting.get(ident)
            if waiter is None:
                raise RuntimeError(f"QEMU answered DMA read {ident}, which was not asked")
            waiter[1], waiter[2] = arg, data
            waiter[0].set()
        else:
            raise RuntimeError(f"QEMU sent {kind.name}, which QEMU never sends")

    def _rtl_active(self):
        d = self.dut
        return any(getattr(d, f"a_{s}").value == 1 for s in (
            "m_axis_rq_tvalid", "m_axis_cc_tvalid", "s_axis_cq_tvalid", "s_axis_rc_tvalid"))

    async def run(self, sock):
        """Serve QEMU until it disconnects."""
        self.link = Link(sock)
        self.link.send(Msg.HELLO, addr=self.params.bar2_size, arg=protocol.VERSION)
        cocotb.start_soon(self.serve_guest())
        idle = 0
        while not self.link.closed:
            if self.busy and not (self.dma_waiting or self.link.tx or self.requests):
                # The RTL works on a guest access and QEMU waits for nothing
                # from here: simulate until the access ends or the RTL sends.
                self.wake.clear()
                await First(self.wake.wait(), ClockCycles(self.ep.clk, WAKE_CYCLES))
                continue
            busy = self.busy or self.dma_waiting or self.requests or self._rtl_active()
            if busy:
                idle = 0
            timeout = BLOCK_SECONDS if idle >= IDLE_ROUNDS else 0
            messages = self.link.poll(timeout)
            for message in messages:
                self.dispatch(message)
            idle = 0 if messages else idle + 1
            # Reads answered from the read block need no clock cycles: keep
            # answering while the guest keeps asking only for those.
            spins = 0
            while messages and not (self.requests or self.busy or self.dma_waiting) \
                    and spins < SPIN_POLLS:
                messages = self.link.poll(SPIN_SECONDS)
                for message in messages:
                    self.dispatch(message)
                spins += 1
            await ClockCycles(self.ep.clk, ROUND_CYCLES)
        for waiter in self.dma_waiting.values():   # QEMU gone: fail what waits
            waiter[0].set()
        await self._finish_posted()
        self.log.info("QEMU disconnected; %s", self.stats)

    async def _finish_posted(self):
        """QEMU gone: the writes it sent before it went still reach the RTL
        (QEMU does not wait for a config write's completion, as a CPU does: a
        shutdown's last act, clearing bus mastering, must land); reads have
        nobody to answer."""
        self.requests = collections.deque(r for r in self.requests if r[0][0] != Msg.MMIO_READ)
        self.requests_event.set()
        for _ in range(DRAIN_ROUNDS):
            if not self.requests and not self.busy:
                return
            await ClockCycles(self.ep.clk, WAKE_CYCLES)
        self.log.warning("QEMU disconnected with %d accesses unfinished", len(self.requests))


@cocotb.test()
async def virtual_board(dut):
    """Serve QEMU's p2p-dax-board device until QEMU goes away."""
    params = params_from_env()
    path = os.environ["P2P_DAX_SOCKET"]
    await Topology.quiet_inputs(dut, params)
    board = VirtualBoard(dut, params)
    await board.start()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path + ".tmp")
    server.listen(1)
    os.rename(path + ".tmp", path)       # the socket appears when it is ready
    server.settimeout(float(os.environ.get("P2P_DAX_ACCEPT_TIMEOUT", "600")))
    try:
        sock, _ = server.accept()        # the simulator stands still meanwhile
    except socket.timeout:
        raise AssertionError(f"no QEMU connected to {path}") from None
    finally:
        server.close()
        os.unlink(path)
    started = time.monotonic()
    await board.run(sock)
    board.link.flush()
    sock.close()
    seconds = time.monotonic() - started
    # What the guest left the board in (a shutdown clears bus mastering).
    stats = dict(board.stats, seconds=round(seconds, 3),
                 bus_master_at_exit=int(board.ep.function.bus_master_enable))
    stats_file = os.environ.get("P2P_DAX_STATS")
    if stats_file:
        with open(stats_file, "w") as f:
            json.dump(stats, f)
    board.ep.checker.assert_clean()
    board.ep.req_checker.assert_clean()


def main(argv=None):
    from hw.params import EndpointParams
    from hw.sim.tb.runner import run

    ap = argparse.ArgumentParser(
        prog="python -m hw.virtual.cosim",
        description="Run the board's RTL for QEMU's p2p-dax-board device until QEMU disconnects.")
    ap.add_argument("--socket", required=True, help="UNIX socket to listen on")
    ap.add_argument("--params", default="{}",
                    help="EndpointParams as JSON over the virtual board's own "
                         "(hw/virtual/__init__.py), e.g. '{\"data_width\": 128}'")
    ap.add_argument("--stats", help="write the session's counters (JSON) here")
    args = ap.parse_args(argv)
    try:
        params = EndpointParams(**(PARAMS | json.loads(args.params)))
    except (TypeError, ValueError) as e:
        ap.error(f"--params: {e}")
    env = {"P2P_DAX_SOCKET": os.path.abspath(args.socket)}
    if args.stats:
        env["P2P_DAX_STATS"] = os.path.abspath(args.stats)
    try:
        run_dir = run("hw.virtual.cosim", params, extra_env=env)
    except AssertionError as e:
        print(f"virtual board: {e}", file=sys.stderr)
        return 1
    print(f"virtual board: simulation ended cleanly (log: {run_dir / 'sim.log'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
