"""The p2pdax command line.

    p2pdax list [--json]     the devices bound to p2p_dax
    p2pdax info DEV          one device, every field
    p2pdax copy SRC DST      a file or block device to BAR memory, or back;
                             --via dma: with the board's DMA engine;
                             --through DEV:OFFSET: file to file through the BAR
    p2pdax selftest DEV      write patterns over the BAR, read back, verify
    p2pdax bench DEV         throughput of each path against a same-run reference
    p2pdax rescan DEV        remove the device, rescan its bridge (after a new bitstream)

DEV is a PCI address (0000:03:00.0 or 03:00.0) or a dax device (dax0.0); in
copy, DEV:OFFSET is BAR memory at OFFSET (suffixes K, M, G).
"""

import argparse
import contextlib
import json
import os
import platform
import sys

from host import bench, client, dma, transfer


def _size(n):
    for unit in ("GiB", "MiB", "KiB"):
        scale = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10}[unit]
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def cmd_list(args):
    found = client.devices()
    if args.json:
        print(json.dumps([d.as_dict() for d in found], indent=2))
        return 0
    if not found:
        print(f"p2pdax: {client.NO_DEVICE}", file=sys.stderr)
        return 1
    for d in found:
        parts = [d.address, f"{d.vendor:04x}:{d.device:04x}", d.kind, f"mode={d.mode}",
                 f"BAR{d.bar} {_size(d.bar_size)}"]
        if d.dax_node:
            parts.append(f"{d.dax_node} {_size(d.dax_size)}")
        if d.p2pmem_size:
            parts.append(f"p2pmem {_size(d.p2pmem_size)}")
        print("  ".join(parts))
    return 0


def _number(text):
    """An offset or length: decimal, 0x hex, or with a K, M or G suffix."""
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
    try:
        return int(text[:-1] if scale > 1 else text, 0) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 4096, 0x1000, 64K, 1M)")


P2PMEM = "p2pmem:"


def _end(spec, file_offset, bars):
    """A FileEnd for a path, a BufferEnd for DEV:OFFSET (its Bar opened into
    bars); for p2pmem:ADDRESS the address, opened once the length is known."""
    if os.path.exists(spec) or ":" not in spec:
        return transfer.FileEnd(spec, file_offset)
    if spec.startswith(P2PMEM):
        return spec[len(P2PMEM):]
    return _bar_end(spec, bars)


def _p2pmem_end(address, length, bars):
    """The BufferEnd of a fresh p2pmem allocation of `length` bytes, kept in bars."""
    if not address:
        raise ValueError(f"{P2PMEM!r}: give the PCI address of the device whose p2pmem "
                         "to use, e.g. p2pmem:0000:04:00.0")
    mem = bars[f"{P2PMEM}{address}"] = client.open_p2pmem(address, length)
    return transfer.BufferEnd(mem, 0)


def _bar_end(spec, bars):
    """The BufferEnd of DEV:OFFSET, its Bar opened into bars."""
    name, _, offset = spec.rpartition(":")
    if not name:
        raise ValueError(f"{spec!r}: give BAR memory as DEV:OFFSET (dax0.0:0, 03:00.0:4M)")
    try:
        offset = _number(offset)
    except argparse.ArgumentTypeError as e:
        raise ValueError(f"{spec!r}: {e}") from None
    bar = bars.get(name) or bars.setdefault(name, client.open_bar(name))
    return transfer.BufferEnd(bar, offset)


def _engine_for(src, dst):
    """--via dma: the engine of the board at one end, the source's first when
    both have one (the engine then writes the peer: posted writes)."""
    ends = [e for e in (src, dst) if isinstance(e, transfer.BufferEnd) and e.buffer.device]
    if not ends:
        raise transfer.TransferError("--via dma: one end must be BAR memory of a board with "
                                     "a DMA engine (DEV:OFFSET)")
    ready = [e for e in ends if e.buffer.device.dma_engine == "ready"]
    return dma.open_engine((ready or ends)[0].buffer.device)


def cmd_copy(args):
    bars = {}
    engine = None
    try:
        src = _end(args.src, args.offset, bars)
        dst = _end(args.dst, args.offset, bars)
        length = args.length
        if length is None:
            if isinstance(src, str):
                raise ValueError(f"{args.src}: a fresh p2pmem allocation has no length of "
                                 "its own: give --length")
            if isinstance(src, transfer.FileEnd):
                length = src.size() - src.offset
            else:
                length = src.buffer.size - src.offset
        if isinstance(src, str) or isinstance(dst, str):
            if args.via != "dma" or args.through is not None:
                raise transfer.TransferError("a p2pmem end is for --via dma: the board's "
                                             "DMA engine moves the data to or from the peer")
            src, dst = (_p2pmem_end(e, length, bars) if isinstance(e, str) else e
                        for e in (src, dst))
        if args.through is not None:
            if not (isinstance(src, transfer.FileEnd) and isinstance(dst, transfer.FileEnd)):
                raise transfer.TransferError("--through is for file to file (NVMe to NVMe "
                                             "through BAR memory): SRC and DST must be files "
                                             "or block devices")
            if args.via == "dma":
                raise transfer.TransferError("--through relays with O_DIRECT I/O: the NVMe "
                                             "devices move the data, not the DMA engine; "
                                             "drop --via dma")
            through = _bar_end(args.through, bars)
            r = transfer.relay(src, dst, through, length, chunk=args.chunk,
                               queue_depth=args.queue_depth, direct=not args.buffered,
                               verify=args.verify)
        elif args.via == "dma":
            engine = _engine_for(src, dst)
            r = transfer.dma_copy(engine, src, dst, length, chunk=args.chunk,
                                  queue_depth=args.queue_depth, verify=args.verify,
                                  timeout=args.timeout)
        else:
            r = transfer.copy(src, dst, length, chunk=args.chunk, queue_depth=args.queue_depth,
                              direct=not args.buffered, verify=args.verify)
    finally:
        if engine is not None:
            engine.close()
        for bar in bars.values():
            bar.close()
    check = f", verified (CRC-32 {r.crc32:#010x})" if r.crc32 is not None else ", not verified"
    via = (f" by the DMA engine of {engine.node}" if engine is not None
           else f" through {args.through}" if args.through is not None else "")
    print(f"copied {r.length} bytes {args.src} -> {args.dst}{via} in {r.seconds:.3f} s "
          f"({bench.rate(r.mb_per_s)} MB/s){check}")
    return 0


def cmd_selftest(args):
    """Two passes over the BAR: each 8-byte word holds its own offset (finds
    address lines that alias), then random data (finds stuck bits).
    Destroys what the BAR held. A dax device larger than the memory behind
    it (a driver older than the rule that registers only MEM_SIZE) fails."""
    import array
    import time
    dev = client.find(args.dev)
    failures = 0
    with client.open_bar(dev) as bar:
        length = min(args.length or bar.size, bar.size)
        if length > dev.mem_size:
            failures += 1
            print(f"{dev.dax_node}: {_size(bar.size)} registered but only "
                  f"{_size(dev.mem_size)} backed by memory (MEM_SIZE): update the p2p_dax "
                  f"driver, which registers only the backed part; testing those "
                  f"{dev.mem_size} bytes")
            length = dev.mem_size
        length -= length % 8
        passes = [("address", array.array("Q", range(0, length, 8)).tobytes()),
                  ("random", os.urandom(length))]
        for name, data in passes:
            t0 = time.monotonic()
            bar.write(0, data)
            t1 = time.monotonic()
            back = bar.read(0, length)
            t2 = time.monotonic()
            if back == data:
                result = "ok"
            else:
                failures += 1
                bad = next(i for i in range(length) if back[i] != data[i])
                result = (f"MISMATCH: first at offset {bad:#x} "
                          f"(wrote {data[bad]:#04x}, read {back[bad]:#04x})")
            print(f"{dev.dax_node} {name:7} {length} bytes: write {length / (t1 - t0) / 1e6:.0f} "
                  f"MB/s, read {length / (t2 - t1) / 1e6:.0f} MB/s, {result}")
    print(f"selftest {dev.address}: {'PASSED' if not failures else 'FAILED'}")
    return 1 if failures else 0


def cmd_bench(args):
    dev = client.find(args.dev)
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(client.open_bar(dev))
        # The DMA paths where the board has an engine that can move data.
        engine = (stack.enter_context(dma.open_engine(dev)) if dev.dma_engine == "ready"
                  else None)
        b = bench.Bench(bar, total=min(args.total, bar.size), sizes=args.sizes,
                        rounds=args.rounds, queue_depth=args.queue_depth,
                        source=args.source, target=args.target, engine=engine,
                        paths=args.paths)
        title = (f"p2pdax bench {dev.address} ({dev.dax_node}, Linux {platform.release()}): "
                 f"{_size(b.total)} per pass, "
                 f"best of {b.rounds}, queue depth {b.queue_depth}")
        bar_progress = None
        if not args.json:
            from tqdm import tqdm
            # disable=None: only on a terminal; a pass takes long enough to draw after each.
            bar_progress = tqdm(total=b.steps, unit="pass", leave=False, file=sys.stderr,
                                disable=None, mininterval=0, miniters=1)

        def progress(path, size):
            if bar_progress is not None:
                bar_progress.set_description(f"{path} {_size(size)}", refresh=False)
                bar_progress.update()
        try:
            rows = b.run(progress)
        finally:
            if bar_progress is not None:
                bar_progress.close()
    if args.plot:
        bench.plot(rows, args.plot, title)
    if args.json:
        print(json.dumps({"device": dev.address, "dax_node": dev.dax_node, "total": b.total,
                          "rounds": b.rounds, "queue_depth": b.queue_depth,
                          "source": b.source, "target": b.target,
                          "dma_node": engine.node if engine else None,
                          "dma_total": b.dma_total,
                          "results": [r.as_dict() for r in rows]}, indent=2))
    else:
        print(title)
        print(bench.table(rows))
        if engine is not None and b.dma_total < b.total:
            print(f"dma: the engine reaches {_size(b.dma_total)} of the BAR "
                  f"({engine.node} dma_window): the DMA paths move that much per pass")
        elif engine is None and dev.kind == "board" and dev.dma_engine:
            print(f"dma: no DMA paths: the engine of {dev.dma_node} is {dev.dma_engine} "
                  "(dmesg | grep p2p_dax)")
        if args.plot:
            print(f"plot: {args.plot}")
    return 0


def cmd_rescan(args):
    address, driver = client.rescan(args.dev, timeout=args.timeout)
    if driver == client.DRIVER:
        dev = client.find(address)
        print(f"{address} is back, bound to {driver}"
              + (f" ({dev.dax_device})" if dev.dax_device else ""))
    else:
        print(f"{address} is back, " + (f"bound to {driver}, not to {client.DRIVER}"
                                         if driver else "bound to no driver")
              + f": load p2p_dax, or bind it by hand (docs/driver.md)")
    return 0


def _sizes(text):
    return [_number(t) for t in text.split(",")]


def cmd_info(args):
    d = client.find(args.dev)
    for key, value in d.as_dict().items():
        print(f"{key:17} {value if value is not None else '-'}")
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="p2pdax", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="the devices bound to p2p_dax")
    p.add_argument("--json", action="store_true", help="a JSON array, one object per device")
    p.set_defaults(run=cmd_list)
    p = sub.add_parser("info", help="every field of one device")
    p.add_argument("dev", metavar="DEV", help="PCI address or dax device")
    p.set_defaults(run=cmd_info)
    p = sub.add_parser("copy", help="a file or block device to BAR memory, or back, or to "
                       "another through BAR memory")
    p.add_argument("src", metavar="SRC", help="a file, a block device or DEV:OFFSET")
    p.add_argument("dst", metavar="DST", help="a file, a block device or DEV:OFFSET")
    p.add_argument("--offset", type=_number, default=0,
                   help="offset in the file or block device (default 0)")
    p.add_argument("--length", type=_number,
                   help="bytes to copy (default: to the end of the source)")
    p.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                   help="compare CRC-32s of source and destination afterwards (default)")
    p.add_argument("--buffered", action="store_true",
                   help="no O_DIRECT (for file systems that refuse it)")
    p.add_argument("--via", choices=("io", "dma"), default="io",
                   help="io: O_DIRECT (or buffered) I/O between a file and the BAR, the CPU "
                   "between two BARs (default); dma: the DMA engine of the board at one end "
                   "(/dev/p2p-daxN), between its BAR2 and a file (staged in RAM) or a "
                   "peer's P2PDMA memory, p2pmem:ADDRESS (a fresh allocation of its "
                   "p2pmem, e.g. an NVMe's CMB; kernels with P2PDMA)")
    p.add_argument("--through", metavar="DEV:OFFSET",
                   help="file to file through BAR memory from OFFSET on, as p2pmem-test does: "
                   "each chunk is read into the BAR and written out of it (with O_DIRECT, "
                   "NVMe to NVMe peer to peer); uses queue depth x chunk bytes of the BAR")
    p.add_argument("--chunk", type=_number, default=1 << 20,
                   help="bytes per I/O or per DMA transfer (default 1M)")
    p.add_argument("--queue-depth", type=int, default=4,
                   help="I/Os or DMA transfers in flight (default 4)")
    p.add_argument("--timeout", type=float, default=dma.DEFAULT_TIMEOUT,
                   help="--via dma: seconds each DMA transfer may take (default "
                   f"{dma.DEFAULT_TIMEOUT:g})")
    p.set_defaults(run=cmd_copy)
    p = sub.add_parser("selftest", help="write patterns over the BAR, read back, verify "
                       "(destroys the BAR's contents)")
    p.add_argument("dev", metavar="DEV", help="PCI address or dax device")
    p.add_argument("--length", type=_number, help="bytes from offset 0 (default: all)")
    p.set_defaults(run=cmd_selftest)
    p = sub.add_parser("bench", help="throughput of CPU, DMA-engine and NVMe paths to and "
                       "from the BAR, "
                       "each against a reference measured in the same run (overwrites the "
                       "BAR's first TOTAL bytes)")
    p.add_argument("dev", metavar="DEV", help="PCI address or dax device")
    p.add_argument("--source", metavar="PATH",
                   help="file or block device to read with O_DIRECT (adds nvme->bar, library)")
    p.add_argument("--target", metavar="PATH", help="file or block device to write with "
                   "O_DIRECT (adds bar->nvme; ITS FIRST TOTAL BYTES ARE OVERWRITTEN)")
    p.add_argument("--total", type=_number, default=64 << 20,
                   help="bytes per pass (default 64M, at most the BAR)")
    p.add_argument("--sizes", type=_sizes, help="transfer sizes, comma-separated (default "
                   f"{','.join(map(bench.size_label, bench.SIZES))}"
                   ", those up to TOTAL)")
    p.add_argument("--paths", type=lambda t: t.split(","), help="paths to run, "
                   f"comma-separated, of {','.join(bench.PATHS)} (default: each one the "
                   "device and options allow)")
    p.add_argument("--rounds", type=int, default=3, help="passes per path and size, the "
                   "best kept (default 3)")
    p.add_argument("--queue-depth", type=int, default=4, help="I/Os in flight (default 4)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--plot", metavar="FILE.png", help="also draw throughput against size")
    p.set_defaults(run=cmd_bench)
    p = sub.add_parser("rescan", help="remove the device and rescan the bridge above it, "
                       "so a new bitstream enumerates without a reboot (needs root)")
    p.add_argument("dev", metavar="DEV", help="PCI address (also of a device no driver has), "
                   "or dax device")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for the device to come back (default 10)")
    p.set_defaults(run=cmd_rescan)
    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except (client.NoDeviceError, client.RescanError, transfer.TransferError, OSError,
            ValueError, ImportError) as e:
        print(f"p2pdax: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
