"""The VM harness from the command line (`make vm`, `make driver`).

    python -m vm run [--kernel 6.1] [--board virtual] [--no-host-root] [--no-driver]
                           [--params P] -- CMD...
    python -m vm build-driver [--kernel 6.1]
    python -m vm fetch [--kernel 6.12] [--refresh]

`run` prints what the command printed in the guest and exits with its exit
code (125 when the VM itself failed). By default the command runs in the
host's root file system (read-only, over 9p) in the current directory, so the
host's tools and the project's .venv work in the guest; --no-host-root runs it
in the busybox initramfs the tests use. One CMD argument is a shell command
line; several are quoted and joined. --board virtual puts the virtual board
on the switch: QEMU's p2p-dax-board device with the RTL simulated behind it
(hw/virtual/); the driver binds it as /dev/dax0.0 and ivshmem as /dev/dax1.0.
"""

import argparse
import json
import shlex
import sys
import time

from vm import kernels, qemu


def main(argv=None):
    first, _, rest = __doc__.partition("\n\n")
    ap = argparse.ArgumentParser(prog="python -m vm", description=first, epilog=rest,
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="%(prog)s [-h] {run,build-driver,fetch} ...")
    sub = ap.add_subparsers(dest="action", required=True)
    kernel = argparse.ArgumentParser(add_help=False)
    kernel.add_argument("--kernel", default="6.1", choices=kernels.NAMES, help="default: 6.1")

    def command(name, usage, help):
        return sub.add_parser(name, parents=[kernel], help=help, prog=f"{ap.prog} {name}",
                              usage=f"%(prog)s [-h] [--kernel K] {usage}".rstrip())
    r = command("run", "[options] -- CMD...", "run a command in the VM")
    r.add_argument("--host-root", action=argparse.BooleanOptionalAction, default=True,
                   help="run in the host's root file system (default) or in the initramfs")
    r.add_argument("--board", choices=["virtual"],
                   help="virtual: the board's RTL behind QEMU's p2p-dax-board device")
    r.add_argument("--board-params", default="{}", metavar="JSON",
                   help="the virtual board's EndpointParams, e.g. '{\"data_width\": 128}'")
    r.add_argument("--no-driver", action="store_true", help="do not build or load p2p_dax.ko")
    r.add_argument("--params", default="memory_bar=2", help="p2p_dax module parameters "
                   "(default: %(default)s)")
    r.add_argument("--no-load", action="store_true",
                   help="put p2p_dax.ko in the initramfs (/lib/modules/) but do not load it")
    r.add_argument("--no-bind", action="store_true", help="do not bind ivshmem to p2p_dax")
    r.add_argument("--share", action="append", default=[], metavar="DIR",
                   help="host directory mounted writable at the same path in the guest")
    r.add_argument("--ivshmem-file", help="ivshmem's backing file (default: a temporary one)")
    r.add_argument("--nvme-images", nargs=2, metavar="IMG", help="the two NVMe images")
    r.add_argument("--append", default="", help="more kernel command line")
    r.add_argument("--timeout", type=float, default=120, help="seconds (default: %(default)s)")
    r.add_argument("-v", "--verbose", action="store_true", help="say how long it took")
    r.add_argument("command", nargs="+", metavar="CMD")

    command("build-driver", "", "build p2p_dax.ko, print its path")
    f = command("fetch", "[--refresh]", "download and unpack a kernel")
    f.add_argument("--refresh", action="store_true", help="ask apt for a newer one")
    args = ap.parse_args(argv)

    try:
        if args.action == "fetch":
            t0 = time.monotonic()
            if args.kernel in kernels.METAPACKAGES:
                k = kernels.fetch(args.kernel, refresh=args.refresh)
            else:
                k = kernels.get(args.kernel)
            print(f"{k.name}: {k.release} in {k.vmlinuz.parents[1]} "
                  f"({time.monotonic() - t0:.1f} s)")
            return 0
        k = kernels.get(args.kernel)
        if args.action == "build-driver":
            print(kernels.build_driver(k))
            return 0
        command = args.command[0] if len(args.command) == 1 else shlex.join(args.command)
        try:
            board_params = json.loads(args.board_params)
            if not isinstance(board_params, dict):
                raise ValueError("not an object")
        except ValueError as e:
            ap.error(f"--board-params: {e}")
        res = qemu.run(k, command, driver=not args.no_driver,
                       driver_params=None if args.no_load else args.params,
                       bind_ivshmem=not args.no_bind, host_root=args.host_root,
                       shares=args.share, ivshmem_file=args.ivshmem_file,
                       nvme_images=args.nvme_images, extra_append=args.append,
                       timeout=args.timeout, board=args.board, board_params=board_params)
    except (RuntimeError, OSError) as e:       # KernelError, VMError
        print(f"vm: {e}", file=sys.stderr)
        return 125
    sys.stdout.write(res.output)
    sys.stdout.flush()
    if args.verbose:
        log = f", console log {res.log}" if res.log else ""
        print(f"vm: {k.name}: exit {res.returncode} after {res.seconds:.1f} s{log}",
              file=sys.stderr)
        if res.board:
            print(f"vm: virtual board: {json.dumps(res.board)}", file=sys.stderr)
    return res.returncode


if __name__ == "__main__":
    sys.exit(main())
