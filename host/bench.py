"""p2pdax bench: the throughput of each path to and from BAR memory, beside a
reference measured in the same run.

Each path moves `total` bytes in transfers of `size` bytes; the sweep runs
every path at every size. A path and its reference run alternately, `rounds`
times each, and the best of each is kept, so a noisy machine slows both
alike and the ratio path/reference is the figure to read.

    path          what moves                          reference
    cpu-read      BAR -> RAM, memcpy by the CPU        memcpy RAM -> RAM
    cpu-write     RAM -> BAR, memcpy by the CPU        memcpy RAM -> RAM
    dma-read      BAR -> RAM by the board's DMA engine memcpy BAR -> RAM by the CPU
    dma-write     RAM -> BAR by the board's DMA engine memcpy RAM -> BAR by the CPU
    nvme->bar     O_DIRECT read of SOURCE into the BAR the same read into a RAM buffer
    bar->nvme     O_DIRECT write of the BAR to TARGET  the same write from a RAM buffer
    library       nvme->bar through transfer.copy,     the same reads by a plain C
                  one I/O in flight                    pread() loop (host.native)

The RAM buffers of the references use pages of the BAR mapping's size (no
transparent huge pages unless the dax device is 2 MiB aligned). The NVMe
paths run when a SOURCE (read) or TARGET (overwritten!) is given; the DMA
paths when the board's engine (a dma.Engine) is given, over the BAR's first
`dma_total` bytes: the total, or less where the engine reaches less (the
memory behind the BAR), at the sizes up to that.
The first pass of each transfer path is verified (CRC-32 of both ends),
outside the timing.
"""

import contextlib
import os
import time
from dataclasses import asdict, dataclass

from host import dma, native, transfer

MiB = 1 << 20
SIZES = (4096, 64 << 10, 256 << 10, MiB, 4 * MiB)

PATHS = {
    "cpu-read": "memcpy RAM -> RAM",
    "cpu-write": "memcpy RAM -> RAM",
    "dma-read": "memcpy BAR -> RAM",
    "dma-write": "memcpy RAM -> BAR",
    "nvme->bar": "NVMe -> RAM",
    "bar->nvme": "RAM -> NVMe",
    "library": "C pread loop",
}


@dataclass
class Row:
    path: str
    size: int               # bytes per transfer
    mb_per_s: float
    reference: str
    reference_mb_per_s: float

    @property
    def ratio(self):
        return self.mb_per_s / self.reference_mb_per_s if self.reference_mb_per_s else 0.0

    def as_dict(self):
        return asdict(self) | {"ratio": round(self.ratio, 4)}


def _timed(fn, *args):
    """(bytes moved, seconds) of fn(*args), which returns the bytes it moved."""
    t0 = time.perf_counter()
    moved = fn(*args)
    return moved, time.perf_counter() - t0


class Bench:
    """The sweep over one BAR (client.Bar, or any object with its interface:
    size, buffer, check). source and target are paths of files or block
    devices; either may be None, which skips the paths that need it; so does
    engine (a dma.Engine of the BAR's board, ready to move data)."""

    def __init__(self, bar, *, total=64 * MiB, sizes=None, rounds=3, queue_depth=4,
                 source=None, target=None, engine=None, paths=None):
        """sizes: bytes per transfer; by default those of SIZES up to the total.
        paths: names of PATHS to run; by default every one that can."""
        if total <= 0 or total % transfer.DIRECT_ALIGN:
            raise ValueError(f"total {total}: give a positive multiple of "
                             f"{transfer.DIRECT_ALIGN} bytes")
        bar.check(0, total)
        if sizes is None:
            sizes = [s for s in SIZES if s <= total] or [total]
        bad = [s for s in sizes if s <= 0 or s % transfer.DIRECT_ALIGN or s > total]
        if bad or not sizes:
            raise ValueError(f"transfer sizes must be multiples of {transfer.DIRECT_ALIGN} "
                             f"from {transfer.DIRECT_ALIGN} to the total ({total}): "
                             f"{', '.join(map(str, bad)) or 'none given'}")
        if rounds < 1 or queue_depth < 1:
            raise ValueError("rounds and queue depth must be at least 1")
        if source is not None:
            have = transfer.FileEnd(source).size()
            if have < total:
                raise ValueError(f"{source} holds {have} bytes, less than the {total} bytes "
                                 "a pass reads; give a smaller --total")
        self.bar, self.total, self.sizes = bar, total, tuple(sizes)
        self.rounds, self.queue_depth = rounds, queue_depth
        self.source, self.target = source, target
        self.engine, self.dma_total, self.dma_sizes = engine, 0, ()
        if engine is not None:
            window = engine.limits.dma_window
            self.dma_total = min(total, window - window % transfer.DIRECT_ALIGN)
            self.dma_sizes = tuple(s for s in self.sizes if s <= self.dma_total) or \
                (self.dma_total,)
        self.paths = [p for p in PATHS if
                      (p not in ("nvme->bar", "library") or source is not None) and
                      (p != "bar->nvme" or target is not None) and
                      (not p.startswith("dma-") or self.dma_total > 0)]
        if paths is not None:
            needs = {"nvme->bar": "a SOURCE (--source)", "library": "a SOURCE (--source)",
                     "bar->nvme": "a TARGET (--target)",
                     "dma-read": "the board's DMA engine, ready to move data",
                     "dma-write": "the board's DMA engine, ready to move data"}
            for p in paths:
                if p not in PATHS:
                    raise ValueError(f"no path {p!r}: the paths are {', '.join(PATHS)}")
                if p not in self.paths:
                    raise ValueError(f"path {p} needs {needs[p]}")
            self.paths = [p for p in self.paths if p in paths]

    def sizes_of(self, path):
        return self.dma_sizes if path.startswith("dma-") else self.sizes

    @property
    def steps(self):
        """Timed passes in run(), for a progress bar."""
        return sum(len(self.sizes_of(p)) for p in self.paths) * self.rounds * 2

    def run(self, progress=lambda path, size: None):
        """Rows, one per path and size; progress(path, size) after each timed pass."""
        rows = []
        with contextlib.ExitStack() as stack:
            # The references' pages are the size of the BAR mapping's.
            huge = getattr(getattr(self.bar, "device", None), "dax_align", 0) >= 2 * MiB
            ram = stack.enter_context(transfer.RamBuffer(self.total, huge))
            ram2 = stack.enter_context(transfer.RamBuffer(self.total, huge))
            ram.buffer[:] = os.urandom(self.total)     # real data: no zero-page shortcuts
            fd = None
            if "library" in self.paths:
                fd = transfer.open_file(transfer.FileEnd(self.source), write=False, direct=True)
                stack.callback(os.close, fd)
            for path in self.paths:
                for size in self.sizes_of(path):
                    run_path, run_ref = self._pair(path, size, ram, ram2, fd)
                    best = best_ref = 0.0
                    for r in range(self.rounds):
                        moved, seconds = run_path(r == 0)
                        best = max(best, moved / seconds / 1e6)
                        progress(path, size)
                        moved, seconds = run_ref(r == 0)
                        best_ref = max(best_ref, moved / seconds / 1e6)
                        progress(path, size)
                    rows.append(Row(path, size, best, PATHS[path], best_ref))
        return rows

    def _pair(self, path, size, ram, ram2, fd):
        """Two functions (verify) -> (bytes moved, seconds): the path and its
        reference. A verified transfer's checksums are not in its seconds."""
        total, bar = self.total, self.bar.buffer[:self.total]
        what = getattr(getattr(self.bar, "device", None), "dax_node", None) or "BAR"

        def cpu(dst, src):
            return _timed(lambda: native.memcpy(dst, src, size, what) or len(dst))

        def files(src, dst, qd, verify):
            r = transfer.copy(src, dst, total, chunk=size, queue_depth=qd, verify=verify)
            return r.length, r.seconds

        def engine(direction, buf, verify):
            moved, seconds = _timed(lambda: self.engine.transfer(
                direction, 0, buf, chunk=size, queue_depth=self.queue_depth))
            if verify and native.crc32(bar[:n], what) != native.crc32(buf):
                raise transfer.TransferError(f"verification failed: {path} moved data that "
                                             f"differs between {what} and RAM")
            return moved, seconds

        n = self.dma_total
        source = transfer.FileEnd(self.source) if self.source else None
        target = transfer.FileEnd(self.target) if self.target else None
        qd = self.queue_depth
        return {
            "cpu-read": (lambda v: cpu(ram2.buffer, bar),
                         lambda v: cpu(ram2.buffer, ram.buffer)),
            "cpu-write": (lambda v: cpu(bar, ram.buffer),
                          lambda v: cpu(ram2.buffer, ram.buffer)),
            "dma-read": (lambda v: engine(dma.FROM_BAR, ram2.buffer[:n], v),
                         lambda v: cpu(ram2.buffer[:n], bar[:n])),
            "dma-write": (lambda v: engine(dma.TO_BAR, ram.buffer[:n], v),
                          lambda v: cpu(bar[:n], ram.buffer[:n])),
            "nvme->bar": (lambda v: files(source, transfer.BufferEnd(self.bar), qd, v),
                          lambda v: files(source, transfer.BufferEnd(ram), qd, v)),
            "bar->nvme": (lambda v: files(transfer.BufferEnd(self.bar), target, qd, v),
                          lambda v: files(transfer.BufferEnd(ram), target, qd, v)),
            "library": (lambda v: files(source, transfer.BufferEnd(self.bar), 1, v),
                        lambda v: _timed(native.dio_read, fd, bar, size)),
        }[path]


def size_label(n):
    """A transfer size as the CLI takes it and the table shows it: 4K, 1M."""
    return f"{n // MiB}M" if n % MiB == 0 else f"{n >> 10}K"


def rate(mb_per_s):
    """MB/s as the table and `p2pdax copy` print it: one decimal, and three
    significant digits below 10 MB/s, so that a slow path (a board in
    simulation) does not read 0.0."""
    return f"{mb_per_s:.1f}" if mb_per_s >= 10 else f"{mb_per_s:.3g}"


def table(rows):
    """The rows as a text table, sizes in K or M."""
    lines = [f"{'path':10} {'size':>5} {'MB/s':>9}   {'reference':18} {'MB/s':>9} {'ratio':>6}"]
    for r in rows:
        size = size_label(r.size)
        ratio = f"{r.ratio:.3f}" if r.ratio >= 0.01 else f"{r.ratio:.2g}"
        lines.append(f"{r.path:10} {size:>5} {rate(r.mb_per_s):>9}   {r.reference:18} "
                     f"{rate(r.reference_mb_per_s):>9} {ratio:>6}")
    return "\n".join(lines)


def plot(rows, filename, title):
    """Throughput against transfer size, one line per path (solid) and its
    reference (dashed, same colour), written as an image to filename."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install 'p2p-dax[plot]' "
                          "(or run `make setup`)") from None
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    for n, path in enumerate(dict.fromkeys(r.path for r in rows)):
        mine = [r for r in rows if r.path == path]
        colour = f"C{n}"
        sizes = [r.size for r in mine]
        ax.plot(sizes, [r.mb_per_s for r in mine], "o-", color=colour, label=path)
        ax.plot(sizes, [r.reference_mb_per_s for r in mine], "x--", color=colour,
                alpha=0.6, label=f"  reference: {mine[0].reference}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted({r.size for r in rows})
    ax.set_xticks(ticks, [size_label(s) for s in ticks])
    ax.set_xlabel("transfer size (bytes per I/O or per memcpy)")
    ax.set_ylabel("MB/s")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(filename, dpi=100)
    plt.close(fig)
