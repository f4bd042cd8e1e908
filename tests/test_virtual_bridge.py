"""The virtual board's simulation side (hw/virtual/cosim.py) against a fake
QEMU that speaks hw/virtual/protocol.py: no VM, so each rule of the bridge
is checked alone, in a few seconds. The VM tests (tests/test_vm_virtual.py,
tests/test_vm_dma.py) run the real QEMU device."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hw.spec import regmap
from hw.virtual import PARAMS
from hw.virtual.protocol import HEADER, MAX_DATA, VERSION, Msg, Status, pack

ROOT = Path(__file__).resolve().parents[1]
BAR2_SIZE = PARAMS["bar2_size"]
MEM_SIZE = PARAMS["mem_size"]


class FakeQemu:
    """What QEMU's device does, in Python: sends the guest's accesses, serves
    the RTL's DMA from `memory` (bus address -> bytearray offset), records its
    writes."""

    def __init__(self, path, memory_base=0x1000_0000, memory_size=1 << 20):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(str(path))
        self.sock.settimeout(60)
        self.base = memory_base
        self.memory = bytearray(memory_size)
        self.dma_reads = []
        self.fail_reads = False
        self.next_id = 0
        kind, length, addr, arg, _ = self._header()
        assert kind == Msg.HELLO and length == 0
        self.bar2_size, self.version = addr, arg

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "the simulation closed the connection"
            buf += chunk
        return buf

    def _header(self):
        return HEADER.unpack(self._recv(HEADER.size))

    def _serve(self, kind, length, addr, arg, ident):
        if kind == Msg.DMA_WRITE:
            data = self._recv(length)
            off = addr - self.base
            assert 0 <= off and off + length <= len(self.memory), f"DMA write at {addr:#x}"
            self.memory[off:off + length] = data
        elif kind == Msg.DMA_READ:
            assert 0 < length <= MAX_DATA
            self.dma_reads.append((addr, length))
            off = addr - self.base
            if self.fail_reads or not (0 <= off and off + length <= len(self.memory)):
                self.sock.sendall(pack(Msg.DMA_READ_REPLY, arg=Status.UNSUPPORTED, ident=ident))
            else:
                self.sock.sendall(pack(Msg.DMA_READ_REPLY, arg=Status.OK, ident=ident,
                                       data=self.memory[off:off + length]))
        else:
            raise AssertionError(f"unexpected {Msg(kind).name} from the simulation")

    def read(self, bar, offset, size):
        self.next_id += 1
        self.sock.sendall(HEADER.pack(Msg.MMIO_READ, size, offset, bar, self.next_id))
        while True:
            kind, length, addr, arg, ident = self._header()
            if kind != Msg.MMIO_READ_REPLY:
                self._serve(kind, length, addr, arg, ident)
                continue
            assert ident == self.next_id
            if arg != Status.OK:
                return None
            return int.from_bytes(self._recv(length), "little")

    def write(self, bar, offset, value, size):
        self.sock.sendall(pack(Msg.MMIO_WRITE, offset, bar, data=value.to_bytes(size, "little")))

    def config_write(self, offset, value, size):
        self.sock.sendall(pack(Msg.CFG_WRITE, offset, data=value.to_bytes(size, "little")))

    def reg(self, name):
        return self.read(0, regmap.offset(name), 4)

    def set_reg(self, name, value):
        self.write(0, regmap.offset(name), value, 4)


@pytest.fixture
def board(tmp_path, request):
    """A simulation and its fake QEMU; parametrize indirectly with a dict to
    add to the simulation's environment."""
    path = tmp_path / "board.sock"
    stats = tmp_path / "stats.json"
    log = open(tmp_path / "cosim.log", "w")
    env = dict(os.environ, **getattr(request, "param", {}))
    proc = subprocess.Popen([sys.executable, "-m", "hw.virtual.cosim", "--socket", str(path),
                             "--stats", str(stats)], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env=env)
    end = time.monotonic() + 600
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < end, \
            (tmp_path / "cosim.log").read_text()
        time.sleep(0.1)
    qemu = FakeQemu(path)
    qemu.config_write(0x04, 0x0006, 2)           # memory space, bus master
    yield qemu
    qemu.sock.close()
    assert proc.wait(120) == 0, (tmp_path / "cosim.log").read_text()


def test_hello_registers_and_bar2(board):
    """The simulation announces its BAR2 and protocol; BAR0 reads reach the
    RTL's registers; BAR2 writes and reads (all sizes) reach its memory, all
    of the BAR, and its far end holds its own data (nothing aliases)."""
    assert (board.bar2_size, board.version) == (BAR2_SIZE, VERSION)
    assert board.reg("ID") == regmap.MAGIC
    assert board.reg("MEM_SIZE_LO") | board.reg("MEM_SIZE_HI") << 32 == MEM_SIZE == BAR2_SIZE
    for size, value in ((1, 0x5A), (2, 0xBEEF), (4, 0x12345678), (8, 0x0123456789ABCDEF)):
        other = value ^ ((1 << 8 * size) - 1)
        board.write(2, 0x100 + size * 8, value, size)
        board.write(2, MEM_SIZE - 0x100 + size * 8, other, size)
        assert board.read(2, 0x100 + size * 8, size) == value
        assert board.read(2, MEM_SIZE - 0x100 + size * 8, size) == other


def test_combined_writes_and_read_block_stay_coherent(board):
    """Consecutive writes are combined and reads come from a block, yet a
    read always sees the last write, and BAR0 is never cached."""
    words = [int.from_bytes(os.urandom(8), "little") for _ in range(64)]
    for i, w in enumerate(words):                 # 512 bytes: combined into few TLPs
        board.write(2, 0x2000 + 8 * i, w, 8)
    assert [board.read(2, 0x2000 + 8 * i, 8) for i in range(64)] == words
    board.write(2, 0x2010, 0xAA, 1)               # inside the block just read
    assert board.read(2, 0x2010, 8) == (words[2] & ~0xFF) | 0xAA
    first = board.reg("DMA_SUBMITTED")
    assert board.reg("DMA_SUBMITTED") == first    # a register read twice: two reads


def _dma(board, local, bus, length, from_bus):
    number = board.reg("DMA_SUBMITTED")
    board.set_reg("DMA_LOCAL", local)
    board.set_reg("DMA_BUS_LO", bus & 0xFFFFFFFF)
    board.set_reg("DMA_BUS_HI", bus >> 32)
    board.set_reg("DMA_LENGTH", length)
    board.set_reg("DMA_CONTROL", regmap.by_name()["DMA_CONTROL"].pack(from_bus=int(from_bus)))
    board.set_reg("DMA_SUBMIT", 1)
    for _ in range(2000):
        if (board.reg("DMA_DONE") - number - 1) & 0xFFFFFFFF < 0x80000000:
            break
    else:
        raise AssertionError("the DMA descriptor did not end")
    slot = f"DMA_RESULT{number % regmap.DMA_RESULTS}"
    return regmap.DmaStatus(regmap.by_name()[slot].unpack(board.reg(slot))["status"])


def test_dma_engine_through_the_bridge(board):
    """The RTL's DMA engine reads and writes QEMU's memory through the
    bridge: bus -> BAR2 lands in the RTL's memory, BAR2 -> bus in QEMU's, and
    a read QEMU fails ends the descriptor with an error status."""
    data = os.urandom(8192)
    board.memory[0x3000:0x3000 + len(data)] = data
    assert _dma(board, 0x4000, board.base + 0x3000, len(data), from_bus=True) == \
        regmap.DmaStatus.OK
    assert board.dma_reads and all(length <= MAX_DATA for _, length in board.dma_reads)
    got = b"".join(board.read(2, 0x4000 + 8 * i, 8).to_bytes(8, "little")
                   for i in range(len(data) // 8))
    assert got == data
    assert _dma(board, 0x4000, board.base + 0x9000, len(data), from_bus=False) == \
        regmap.DmaStatus.OK
    assert board.memory[0x9000:0x9000 + len(data)] == data
    board.fail_reads = True
    # QEMU's failed read becomes a Completer Abort from the root complex.
    assert _dma(board, 0x8000, board.base, 256, from_bus=True) == \
        regmap.DmaStatus.COMPLETER_ABORT


@pytest.mark.parametrize("board", [{"P2P_DAX_FAULT": "abort@0x1000"}], indirect=True)
def test_injected_abort_fails_the_next_dma_read(board):
    """P2P_DAX_FAULT=abort@OFFSET: each guest write to BAR2 at OFFSET makes the
    RTL's next DMA read end in a Completer Abort, though QEMU would serve it;
    the reads after it are carried out as usual."""
    board.memory[:4096] = os.urandom(4096)
    board.write(2, 0x1000, 1, 8)
    assert _dma(board, 0x8000, board.base, 256, from_bus=True) == \
        regmap.DmaStatus.COMPLETER_ABORT
    assert not board.dma_reads, "the aborted read went to QEMU"
    assert _dma(board, 0x8000, board.base, 256, from_bus=True) == regmap.DmaStatus.OK
    assert board.read(2, 0x8000, 8) == int.from_bytes(board.memory[:8], "little")
    board.write(2, 0x1008, 1, 8)              # another offset: no fault armed
    assert _dma(board, 0x8000, board.base, 256, from_bus=True) == regmap.DmaStatus.OK
