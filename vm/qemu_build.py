"""A QEMU with the virtual board in it, built from Debian's qemu source.

    python -m vm.qemu_build          build (cached), print the binary's path

Debian's QEMU 7.2 source is fetched with a private apt configuration that
adds deb-src entries (apt-get source, into .cache/qemu/), the device
hw/virtual/p2p_dax_board.c, the register header it includes and the bridge
protocol's header (generated from hw/virtual/protocol.py) are copied into
hw/misc/, and a minimal x86_64 QEMU is configured (TCG, q35, PCIe switch
ports, ivshmem, nvme, virtio 9p, intel-iommu) and built: `ninja qemu-system-x86_64` only.
The binary is cached under a key of the source version, the device, the
headers and this recipe; the configured tree is kept (.cache/qemu/tree-*),
so a change to the device rebuilds in seconds. A cold build, fetch
included, takes about 2.5 minutes on 2 cores. The newest 7.2 source
version is looked up once a day (.cache/qemu/version).

Needs BUILD_PACKAGES (scripts/setup.sh installs them); seabios and
qemu-system-data are the firmware (-L /usr/share/seabios -L /usr/share/qemu).
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hw.virtual import protocol

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "qemu"
DEVICE = ROOT / "hw" / "virtual" / "p2p_dax_board.c"
HEADER = ROOT / "driver" / "p2p_dax_regs.h"
PROTOCOL = ROOT / "hw" / "virtual" / "protocol.py"
BRIDGE_HEADER = "p2p_dax_bridge.h"
KCONFIG_SYMBOL = "P2P_DAX_BOARD"
BUILD_PACKAGES = ("dpkg-dev", "debian-archive-keyring", "meson", "ninja-build", "pkg-config",
                  "libglib2.0-dev", "libpixman-1-dev", "libcap-ng-dev", "libattr1-dev",
                  "libfdt-dev", "zlib1g-dev", "seabios", "qemu-system-data")
DEVICES = ["Q35", "PCIE_PORT", "XIO3130", "IVSHMEM_DEVICE", "NVME_PCI", "VIRTIO_PCI",
           "VIRTIO_9P", "VTD", KCONFIG_SYMBOL]
CONFIGURE = ["--target-list=x86_64-softmmu", "--without-default-features",
             "--without-default-devices", "--with-devices-x86_64=p2p-dax", "--enable-tcg",
             "--enable-virtfs", "--enable-attr", "--enable-cap-ng", "--enable-fdt=system",
             "--disable-docs", "--disable-werror"]
SOURCES = """\
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def _apt_options():
    apt = CACHE / "apt"
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list.d" / "deb-src.sources").write_text(SOURCES)
    # APT::Sandbox::User=root: apt's sandbox user cannot read here, which apt
    # reports as a misleading "gpgv required"; signatures are still checked.
    return ["-o", "Dir::Etc::SourceList=/dev/null",
            "-o", f"Dir::Etc::SourceParts={apt / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={apt / 'lists'}",
            "-o", f"Dir::Cache={apt / 'cache'}",
            "-o", "APT::Sandbox::User=root"]


def _run(cmd, log, **kw):
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, **kw)
    if r.returncode:
        raise RuntimeError(f"{cmd[0]} failed (exit {r.returncode}): see {log}")


def source_version(log):
    """The newest qemu 7.2 source in Debian bookworm (the version Debian ships)."""
    cached = CACHE / "version"
    if cached.exists() and time.time() - cached.stat().st_mtime < 86400:
        return cached.read_text().strip()
    opts = _apt_options()
    _run(["apt-get", *opts, "-q", "update"], log)
    out = subprocess.run(["apt-cache", *opts, "showsrc", "qemu"], capture_output=True,
                         text=True, check=True).stdout
    versions = [line.split()[1] for line in out.splitlines() if line.startswith("Version:")]
    versions = [v for v in versions if v.split(":")[-1].startswith("7.2")]
    if not versions:
        raise RuntimeError("no qemu 7.2 source in Debian bookworm's index")
    newest = subprocess.run(["sh", "-c", "printf '%s\\n' \"$@\" | sort -V | tail -1", "-",
                             *versions], capture_output=True, text=True).stdout.strip()
    cached.write_text(newest + "\n")
    return newest


def key(version):
    h = hashlib.sha256(version.encode())
    for path in (DEVICE, HEADER, PROTOCOL, Path(__file__)):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _copy_device(tree):
    misc = tree / "hw" / "misc"
    shutil.copy(DEVICE, misc / DEVICE.name)
    shutil.copy(HEADER, misc / HEADER.name)
    (misc / BRIDGE_HEADER).write_text(protocol.c_header())


def _add_device(tree):
    misc = tree / "hw" / "misc"
    with open(misc / "Kconfig", "a") as f:
        f.write(f"\nconfig {KCONFIG_SYMBOL}\n    bool\n    default y if TEST_DEVICES\n"
                "    depends on PCI && MSI_NONBROKEN\n")
    with open(misc / "meson.build", "a") as f:
        f.write(f"\nsoftmmu_ss.add(when: 'CONFIG_{KCONFIG_SYMBOL}', "
                f"if_true: files('{DEVICE.name}'))\n")
    mak = tree / "configs" / "devices" / "x86_64-softmmu" / "p2p-dax.mak"
    mak.write_text("".join(f"CONFIG_{d}=y\n" for d in DEVICES))


def build(quiet=False):
    """Path of a qemu-system-x86_64 with the p2p-dax-board device (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "build.lock", "w") as lock:     # parallel test workers: one builds
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(quiet)


def _build(quiet):
    log = CACHE / "build.log"
    log.write_text("")
    version = source_version(log)
    k = key(version)
    binary = CACHE / f"qemu-system-x86_64-{k}"
    if binary.exists():
        return binary
    recipe = hashlib.sha256(version.encode() + Path(__file__).read_bytes()).hexdigest()[:12]
    work = CACHE / f"tree-{recipe}"          # the configured source tree, kept
    tree, build_dir = work / "src", work / "src" / "build"
    env = {**os.environ, "PATH": "/usr/bin:/bin:" + os.environ.get("PATH", "")}
    if not quiet:
        print(f"building QEMU {version} with the p2p-dax board (log: {log})", flush=True)
    if not (work / "configured").exists():
        for old in CACHE.glob("tree-*"):
            shutil.rmtree(old, ignore_errors=True)
        work.mkdir()
        _run(["apt-get", *_apt_options(), "-q", "source", "--download-only",
              f"qemu={version}"], log, cwd=work)
        dsc = next(work.glob("qemu_*.dsc"))
        _run(["dpkg-source", "-x", dsc.name, "src"], log, cwd=work)
        _copy_device(tree)
        _add_device(tree)
        build_dir.mkdir()
        _run(["../configure", *CONFIGURE], log, cwd=build_dir, env=env)
        (work / "configured").touch()
    _copy_device(tree)
    _run(["ninja", "qemu-system-x86_64"], log, cwd=build_dir, env=env)
    tmp = binary.with_suffix(".tmp")
    shutil.copy(build_dir / "qemu-system-x86_64", tmp)
    tmp.replace(binary)
    for old in CACHE.glob("qemu-system-x86_64-*"):
        if old != binary:
            old.unlink()
    return binary


if __name__ == "__main__":
    print(build())
    sys.exit(0)
