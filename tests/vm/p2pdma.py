"""A 6.12 kernel built with CONFIG_PCI_P2PDMA for the VM tests.

Debian's stock kernels build P2PDMA out, so the driver's p2pdma mode (a BAR
registered with pci_p2pdma_add_resource, p2pmem/allocate in sysfs, O_DIRECT from
an NVMe into it) needs a kernel of our own. build() fetches Debian's
`linux-source-6.12` with `apt-get download`, configures it with `make tinyconfig`
plus OPTIONS, builds bzImage and modules, and keeps everything under
.cache/kernels/6.12-p2pdma/ (repository root), keyed on the source package
version, OPTIONS, the compiler and the build recipe in this file. A later call
with nothing changed reads one small file and returns.

    python -m tests.vm.p2pdma [-j N]     # build (or find in the cache), print the Kernel

The build packages are in BUILD_PACKAGES (scripts/setup.sh installs them).
"""

import argparse
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

try:
    from .kernels import Kernel
except ImportError:         # imported as a top-level module (tests/vm on sys.path)
    from kernels import Kernel

NAME = "6.12-p2pdma"
SOURCE_PACKAGE = "linux-source-6.12"
SOURCE_TARBALL = "./usr/src/linux-source-6.12.tar.xz"   # inside the .deb
LOCALVERSION = "-p2pdma"                                 # uname -r: 6.12.NNN-p2pdma

# Debian packages the build needs (beyond apt and dpkg): compiler and make,
# flex/bison (kconfig), bc (timeconst), libelf-dev (objtool), xz-utils (the
# source tarball, and the XZ-compressed bzImage of tinyconfig), kmod (depmod for
# modules_install). Not libssl-dev: only sign-file and extract-cert use OpenSSL,
# and MODULE_SIG / the trusted keyring are off. Not dwarves: no debug info/BTF.
BUILD_PACKAGES = ("gcc", "make", "libc6-dev", "flex", "bison", "bc", "libelf-dev",
                  "xz-utils", "kmod")

# Everything set on top of `make tinyconfig`. "NAME" means =y, "NAME=m" a module,
# "NAME=n" off, "NAME=\"str\"" a string. Written as one fragment, merged with
# `make olddefconfig`, then each entry is checked in the final .config: Kconfig
# silently drops a value whose dependencies are not met, so a missing dependency
# shows up as a named failure here rather than as a kernel without the feature.
OPTIONS = (
    # base: 64-bit x86 with SMP (real spinlocks for the driver, -smp N works),
    # modules (out-of-tree driver), no debug info
    "64BIT", "SMP", "MODULES", "MODULE_UNLOAD", "MODVERSIONS=n", "MODULE_SIG=n",
    "DEBUG_INFO_NONE", "DEBUG_INFO=n", "LOCALVERSION_AUTO=n",
    f'LOCALVERSION="{LOCALVERSION}"',
    # console and user space (busybox initramfs, or the host's root over 9p)
    "PRINTK", "TTY", "SERIAL_8250", "SERIAL_8250_CONSOLE", "UNIX98_PTYS",
    "BLK_DEV_INITRD", "RD_GZIP", "DEVTMPFS", "DEVTMPFS_MOUNT",
    "BINFMT_ELF", "BINFMT_SCRIPT", "PROC_FS", "PROC_SYSCTL", "SYSFS", "TMPFS", "SHMEM",
    "MULTIUSER", "POSIX_TIMERS", "FUTEX", "EPOLL", "SIGNALFD", "TIMERFD", "EVENTFD",
    "FILE_LOCKING", "INOTIFY_USER", "AIO", "ADVISE_SYSCALLS", "UNIX",
    # the host's root file system, read-only over 9p on virtio-pci
    "NET", "NET_9P", "NET_9P_VIRTIO", "9P_FS", "VIRTIO_MENU", "VIRTIO_PCI",
    # PCI Express: q35, a switch (root port, x3130 up/downstream ports), MSI(-X),
    # MMCONFIG for extended config space (ACS and other extended capabilities)
    "PCI", "PCI_MSI", "PCIEPORTBUS", "ACPI", "PCI_MMCONFIG",
    # the emulated NVMe (its CMB registers as p2pmem)
    "BLOCK", "BLK_DEV", "BLK_DEV_NVME",
    # ZONE_DEVICE and what it depends on (MEMORY_HOTREMOVE needs MIGRATION)
    "SPARSEMEM_VMEMMAP", "MEMORY_HOTPLUG", "MIGRATION", "MEMORY_HOTREMOVE", "ZONE_DEVICE",
    # what the driver's two modes use
    "PCI_P2PDMA",
    "TRANSPARENT_HUGEPAGE", "DAX", "DEV_DAX", "FS_DAX",   # DEV_DAX needs THP; mmap needs FS_DAX
    # AUXILIARY_BUS has no prompt: only a `select` sets it. INTEL_VSEC (a PCI
    # driver that binds only Intel vendor capabilities, so idle in QEMU) is a
    # small x86 one; as a module it also leaves a .ko for modules_install.
    "X86_PLATFORM_DEVICES", "INTEL_VSEC=m", "AUXILIARY_BUS",
)

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "kernels" / NAME


class BuildError(RuntimeError):
    pass


# ---------------------------------------------------------------- helpers

def _parse_option(entry):
    name, _, value = entry.partition("=")
    return "CONFIG_" + name, value or "y"


def _log_run(cmd, log, cwd=None, env=None):
    """Run cmd with its output appended to the log; on failure raise with the log's tail."""
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(map(str, cmd))}\n")
        f.flush()
        r = subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise BuildError(f"{' '.join(map(str, cmd))} failed (exit {r.returncode})\n"
                         f"{_tail(log)}\nfull log: {log}")


def _tail(log, lines=40):
    text = Path(log).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _apt_lists_signature():
    """Names, sizes and mtimes of apt's package lists and preferences: while they
    are unchanged, apt's candidate version is too, and need not be asked again
    (apt-cache takes about 0.5 s here: this system keeps no pkgcache.bin)."""
    sig = []
    for d, pattern in (("/var/lib/apt/lists", "*Packages*"), ("/etc/apt", "preferences*"),
                       ("/etc/apt/preferences.d", "*")):
        for p in sorted(Path(d).glob(pattern)):
            try:
                st = p.stat()
            except OSError:
                continue
            sig.append([str(p), st.st_size, st.st_mtime_ns])
    return sig


def _candidate_version():
    """The version `apt-get download` would fetch, or None if apt does not know the package."""
    r = subprocess.run(["apt-cache", "policy", SOURCE_PACKAGE], capture_output=True, text=True)
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("Candidate:"):
            v = line.split(":", 1)[1].strip()
            return None if v == "(none)" else v
    return None


def _compiler():
    r = subprocess.run(["gcc", "--version"], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError("gcc not found: install " + " ".join(BUILD_PACKAGES))
    return r.stdout.splitlines()[0]


# ---------------------------------------------------------------- the recipe
# The source of these functions is part of the cache key (_recipe_hash): change
# how the kernel is built and the next build() rebuilds.

def _fetch_source(version, tree, log):
    """apt-get download the source package, unpack its tarball into tree."""
    if tree.exists():
        shutil.rmtree(tree)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        # APT::Sandbox::User=root: the _apt user cannot write into our folder
        # (and on some machines /dev/null's mode breaks the sandbox user).
        _log_run(["apt-get", "download", "-o", "APT::Sandbox::User=root",
                  f"{SOURCE_PACKAGE}={version}"], log, cwd=tmp)
        deb, = Path(tmp).glob("*.deb")
        unpack = Path(tmp) / "src"
        unpack.mkdir()
        _log_run(["sh", "-c", 'dpkg-deb --fsys-tarfile "$1" | tar -xO "$2" | tar -xJ -C "$3"',
                  "sh", deb, SOURCE_TARBALL, unpack], log)
        top, = unpack.iterdir()             # linux-source-6.12/
        top.rename(tree)
    (tree / ".p2pdma-source").write_text(version + "\n")


def _configure(tree, log, make):
    """tinyconfig, then OPTIONS as a fragment merged with olddefconfig; check every option."""
    _log_run(make + ["tinyconfig"], log)
    fragment = tree / "kernel" / "configs" / "p2pdma.config"
    lines = []
    for entry in OPTIONS:
        sym, value = _parse_option(entry)
        lines.append(f"# {sym} is not set" if value == "n" else f"{sym}={value}")
    fragment.write_text("\n".join(lines) + "\n")
    _log_run(make + ["p2pdma.config"], log)     # merge_config.sh -m + olddefconfig
    _check_config(tree / ".config")


def _check_config(path):
    have = {}
    for line in path.read_text().splitlines():
        if line.startswith("CONFIG_"):
            sym, _, value = line.partition("=")
            have[sym] = value
    wrong = []
    for entry in OPTIONS:
        sym, value = _parse_option(entry)
        got = have.get(sym, "n")
        if got != value:
            wrong.append(f"{sym}: wanted {value}, got {got}")
    if wrong:
        raise BuildError("kernel options that did not end up as requested (unmet "
                         "dependencies? see `make menuconfig` in " + str(path.parent) +
                         "):\n  " + "\n  ".join(wrong))


def _compile(tree, log, make, root):
    """bzImage and modules, modules_prepare for out-of-tree builds, modules_install into root."""
    _log_run(make + ["bzImage", "modules"], log)
    _log_run(make + ["modules_prepare"], log)
    if root.exists():
        shutil.rmtree(root)
    _log_run(make + ["modules_install", f"INSTALL_MOD_PATH={root}"], log)
    release = (tree / "include" / "config" / "kernel.release").read_text().strip()
    moddir = root / "lib" / "modules" / release
    for f in ("modules.dep", "modules.builtin"):
        if not (moddir / f).is_file():
            raise BuildError(f"modules_install left no {moddir / f} (is depmod, package "
                             f"kmod, installed?)\n{_tail(log)}\nfull log: {log}")
    # the build/ and source/ links modules_install leaves point at the tree: fine,
    # it stays in the cache. The image goes next to the modules.
    (root / "boot").mkdir()
    vmlinuz = root / "boot" / f"vmlinuz-{release}"
    shutil.copyfile(tree / "arch" / "x86" / "boot" / "bzImage", vmlinuz)
    return release, vmlinuz, moddir


def _check_out_of_tree(tree, log):
    """An out-of-tree hello-world module must build against the tree."""
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        (Path(tmp) / "hello.c").write_text(
            "#include <linux/module.h>\n"
            "static int __init hello_init(void) { pr_info(\"hello\\n\"); return 0; }\n"
            "static void __exit hello_exit(void) { }\n"
            "module_init(hello_init);\nmodule_exit(hello_exit);\n"
            "MODULE_LICENSE(\"GPL\");\n")
        (Path(tmp) / "Makefile").write_text("obj-m := hello.o\n")
        _log_run(["make", "-C", tree, f"M={tmp}", "modules"], log)
        if not (Path(tmp) / "hello.ko").is_file():
            raise BuildError(f"out-of-tree test module: no hello.ko\nfull log: {log}")


_RECIPE = (_fetch_source, _configure, _check_config, _compile, _check_out_of_tree)


def _recipe_hash():
    h = hashlib.sha256()
    for f in _RECIPE:
        h.update(inspect.getsource(f).encode())
    return h.hexdigest()


# ---------------------------------------------------------------- the cache

def _key(version, compiler):
    blob = json.dumps({"package": SOURCE_PACKAGE, "version": version, "options": OPTIONS,
                       "compiler": compiler, "recipe": _recipe_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# Paths in the stamp are relative to CACHE, so a cache restored elsewhere (CI) still works.
def _kernel(stamp):
    return Kernel(name=NAME, release=stamp["release"], vmlinuz=CACHE / stamp["vmlinuz"],
                  modules_dir=CACHE / stamp["modules_dir"], kdir=CACHE / stamp["kdir"],
                  make_args=())


def _cached(stamp_path):
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return None
    if not all(isinstance(stamp.get(k), str) and (CACHE / stamp[k]).exists()
               for k in ("vmlinuz", "modules_dir", "kdir")):
        return None
    return stamp


def build(jobs=None) -> Kernel:
    """Build the P2PDMA kernel, or return it from the cache if nothing changed."""
    stamp_path = CACHE / "stamp.json"
    # Fast path: no lock, no apt-cache (0.5 s), while apt's lists are as they were.
    stamp = _cached(stamp_path)
    compiler = _compiler()
    lists = _apt_lists_signature()
    if stamp and stamp.get("apt_lists") == lists \
            and stamp.get("key") == _key(stamp.get("version"), compiler):
        return _kernel(stamp)

    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # one build at a time (pytest -n)
        stamp = _cached(stamp_path)
        version = _candidate_version()
        if version is None:
            # apt has no lists (a fresh container before `apt-get update`): a
            # cached build made the same way from whatever version will do.
            if stamp and stamp.get("key") == _key(stamp.get("version"), compiler):
                return _kernel(stamp)
            raise BuildError(f"apt knows no {SOURCE_PACKAGE}: run `apt-get update` "
                             "(Debian 12 with bookworm-security in its sources)")
        key = _key(version, compiler)
        if stamp and stamp.get("key") == key:
            stamp["apt_lists"] = lists
            stamp_path.write_text(json.dumps(stamp, indent=1) + "\n")
            return _kernel(stamp)

        stamp_path.unlink(missing_ok=True)
        log = CACHE / "build.log"
        log.write_text(f"# {NAME} from {SOURCE_PACKAGE} {version}, key {key}\n")
        tree = CACHE / SOURCE_PACKAGE
        root = CACHE / "root"
        t0 = time.monotonic()
        src_stamp = tree / ".p2pdma-source"
        # Same source version: keep the unpacked tree, kbuild rebuilds what changed.
        if not (src_stamp.is_file() and src_stamp.read_text().strip() == version):
            _fetch_source(version, tree, log)
        jobs = jobs or os.cpu_count() or 1
        make = ["make", "-C", str(tree), f"-j{jobs}"]
        _configure(tree, log, make)
        release, vmlinuz, moddir = _compile(tree, log, make, root)
        _check_out_of_tree(tree, log)
        stamp = {"key": key, "version": version, "apt_lists": lists, "release": release,
                 "vmlinuz": str(vmlinuz.relative_to(CACHE)),
                 "modules_dir": str(moddir.relative_to(CACHE)), "kdir": tree.name,
                 "build_seconds": round(time.monotonic() - t0)}
        tmp = stamp_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stamp, indent=1) + "\n")
        tmp.rename(stamp_path)
        return _kernel(stamp)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.vm.p2pdma", description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", "--jobs", type=int, default=None, help="make -j (default: number of cores)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    try:
        k = build(args.jobs)
    except BuildError as e:
        print(f"p2pdma: {e}", file=sys.stderr)
        return 1
    for f in ("name", "release", "vmlinuz", "modules_dir", "kdir", "make_args"):
        print(f"{f:12} {getattr(k, f)}")
    print(f"{'took':12} {time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
