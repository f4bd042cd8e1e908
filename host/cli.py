"""The p2pdax command line.

    p2pdax list [--json]     the devices bound to p2p_dax
    p2pdax info DEV          one device, every field

DEV is a PCI address (0000:03:00.0 or 03:00.0) or a dax device (dax0.0).
Still to come (issue 5): copy, bench, selftest.
"""

import argparse
import json
import sys

from . import client


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
        print("no device is bound to p2p_dax", file=sys.stderr)
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
    args = ap.parse_args(argv)
    try:
        return args.run(args)
    except (client.NoDeviceError, PermissionError, ValueError) as e:
        print(f"p2pdax: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
