"""Boot a kernel under QEMU with the project's PCIe topology, run one shell
command in the guest, return its output and exit code (like `vng --exec`).

    from vm.qemu import run
    r = run("6.1", "ls /dev/dax0.0")     # Result(returncode, output, seconds, log)

The guest (q35, TCG unless KVM is shown to work, 1 GiB):

    pcie.0 - root port rp0 - x3130 upstream port up0 - downstream dn0: ivshmem-plain (1af4:1110)
                                                      - downstream dn1: nvme serial n0 (16 MiB CMB)
                                                      - downstream dn2: nvme serial n1
                                                        (nvme1_on_root=True: on pcie.0, 16 MiB CMB)
    pcie.0 - virtio-9p-pci: the host's / (host_root=True), and one per directory in shares

With the IOMMU on (iommu=True, or P2P_DAX_VM_IOMMU=1) there is no switch:
dn0.. are root ports on pcie.0, each device on its own (see run()).

With board="virtual" the board itself is on dn0: QEMU's p2p-dax-board device
(hw/virtual/p2p_dax_board.c, in a QEMU built by vm/qemu_build.py),
whose BAR accesses go to the RTL's simulation (hw/virtual/cosim.py, started
here and stopped when QEMU exits), and ivshmem moves to a fourth port, dn3,
as the peer. The unmodified driver binds the board by its ID at insmod
(/dev/dax0.0); ivshmem, bound afterwards, is /dev/dax1.0.

ivshmem's memory is a host file (ivshmem_file, or a temporary one), the NVMe
namespaces are raw image files (nvme_images, or temporary ones), so a test can
check on the host what the guest wrote.

The guest boots a busybox initramfs (Debian's busybox-static) whose /init
loads nvme, device_dax and the 9p modules, loads p2p_dax.ko with
driver_params (driver_params=None: the module is at /lib/modules/p2p_dax.ko
but not loaded), binds ivshmem to it (bind_ivshmem), and runs the command with
`sh -c`. With host_root=True the command runs chrooted in the host's root file
system (read-only over 9p, tmpfs on /tmp, /run, /var/tmp) in the host's
current directory, so the host's tools and the project's .venv work in the
guest; extra_files are in the initramfs only. The host's /tmp is hidden, but
for the top directory of the working directory when that is under /tmp (a
clone there), which is shared read-only; give a directory the guest writes
to in `shares`.
Problems of the set-up (a module that did not load, no /dev/dax0.0) are
printed as "p2p-dax-vm: ..." lines ahead of the command's output. Results are
read from the serial console between two marker lines; the console log of a
run that failed goes to build/vm-logs/.

Environment: P2P_DAX_VM_ACCEL=tcg|kvm skips the KVM probe (cached in .cache/vm/).
"""

import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import secrets
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vm.kernels import ROOT, Kernel, boot_image, build_driver, elf_segments
from vm.kernels import get as get_kernel

BUSYBOX = Path("/bin/busybox")                  # Debian's busybox-static
QEMU = "qemu-system-x86_64"
# + their dependencies. nd_e820, nd_pmem, dax_pmem: legacy pmem (memmap=N!S on
# the command line) as another dax provider; idle without memmap=.
MODULES = ("nvme", "device_dax", "virtio_pci", "9pnet_virtio", "9p",
           "nd_e820", "nd_pmem", "dax_pmem")
DRIVER_GUEST_PATH = "/lib/modules/p2p_dax.ko"
IVSHMEM_ID = "0x1af4:0x1110"
APPEND = "console=ttyS0 nokaslr panic=-1 quiet loglevel=1"
INITRAMFS = ROOT / "build" / "vm" / "initramfs"
LOGS = ROOT / "build" / "vm-logs"
STATE = ROOT / ".cache" / "vm"
MiB = 1 << 20
GUEST_TMPFS = ("/tmp", "/run", "/var/tmp")     # the guest's own in host-root mode


class VMError(RuntimeError):
    pass


@dataclass
class Result:
    returncode: int
    output: str                 # what the command printed (stdout and stderr, in order)
    seconds: float              # QEMU start to exit
    log: Path | None = None     # the whole console log, kept when the command failed
    board: dict | None = None   # board="virtual": the bridge's counters (hw/virtual/cosim.py)


# ---------------------------------------------------------------- the guest's /init

INIT = r"""#!/bin/sh
# /init of the p2p-dax VM harness (vm/qemu.py)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
. /etc/p2p-dax/run.conf
say() { echo "p2p-dax-vm: $*" >> /tmp/p2p-dax-say; }      # shown before the command's output
# Parameters given on the kernel command line as module.param=value, as
# modprobe passes them (busybox insmod does not).
params() { n=${1%.ko}; n=$(echo $n | tr - _)
    for w in $(cat /proc/cmdline); do case $w in $n.*=*) echo ${w#$n.};; esac; done; }
for m in $(cat /etc/p2p-dax/modules); do
    insmod /lib/modules/$m $(params $m) 2>/tmp/err ||
        say "insmod $m failed: $(cat /tmp/err) (load order: $(echo $(cat /etc/p2p-dax/modules)))"
done
if [ "$LOAD_DRIVER" = 1 ]; then
    insmod /lib/modules/p2p_dax.ko $DRIVER_PARAMS || say "insmod p2p_dax.ko $DRIVER_PARAMS failed"
fi
if [ "$LOAD_DRIVER" = 1 ] && [ "$BIND" = 1 ]; then
    dev=
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat $d/vendor):$(cat $d/device)" = "$IVSHMEM_ID" ] && dev=${d##*/}
    done
    if [ -z "$dev" ]; then
        say "no ivshmem device ($IVSHMEM_ID) to bind"
    else
        echo p2p_dax > /sys/bus/pci/devices/$dev/driver_override
        echo $dev > /sys/bus/pci/drivers_probe
        i=0
        while [ ! -e /dev/dax0.0 ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
        [ -e /dev/dax0.0 ] || say "no /dev/dax0.0 after binding $dev to p2p_dax (run dmesg)"
    fi
fi
R=
if [ "$HOST_ROOT" = 1 ]; then
    R=/newroot
    mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot $R ||
        say "cannot mount the host's root file system"
    mount -t proc proc $R/proc
    mount -t sysfs sys $R/sys
    mount -t devtmpfs dev $R/dev
    mkdir -p $R/dev/pts $R/dev/shm
    mount -t devpts devpts $R/dev/pts
    mount -t tmpfs shm $R/dev/shm
    for d in $GUEST_TMPFS; do mount -t tmpfs tmp $R$d; done
fi
i=0
for share in $SHARES; do        # PATH:rw or PATH:ro
    path=${share%:*}
    mkdir -p "$R$path"
    mount -t 9p -o ${share##*:},trans=virtio,version=9p2000.L,msize=512000 share$i "$R$path" ||
        say "cannot mount share$i at $path"
    i=$((i + 1))
done
echo "P2P-DAX-VM-START-$TOKEN"
# Shortly before the host gives up on the command, the guest's view of the
# hang goes to the console (and so into the saved log): user processes with
# their state and wait channel, blocked tasks, what each CPU runs, the last
# kernel messages.
(sleep $HANG_DUMP
 echo "p2p-dax-vm: the command still runs after $HANG_DUMP s: blocked tasks, CPUs and kernel log"
 for p in /proc/[0-9]*; do c=$(tr '\0' ' ' < $p/cmdline)
     [ -n "$c" ] && echo "$(cut -d' ' -f1,3 $p/stat) $(cat $p/wchan): $c"; done
 echo w > /proc/sysrq-trigger; echo l > /proc/sysrq-trigger; dmesg | tail -60) > /dev/console 2>&1 &
[ -f /tmp/p2p-dax-say ] && cat /tmp/p2p-dax-say >&2
if [ -n "$R" ]; then
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp \
        TERM=dumb LANG=C.UTF-8 P2P_DAX_CMD="$(cat /etc/p2p-dax/cmd)" chroot $R /bin/sh -c \
        'cd "$0" || { echo "p2p-dax-vm: running in / instead" >&2; cd /; }
         c=$P2P_DAX_CMD; unset P2P_DAX_CMD; exec /bin/sh -c "$c"' \
        "$CWD" </dev/null
else
    sh -c "$(cat /etc/p2p-dax/cmd)" </dev/null
fi
rc=$?
printf '\nP2P-DAX-VM-EXIT-%s %s\n' "$TOKEN" $rc
[ $rc -ne 0 ] && dmesg
# tcsetattr(TCSADRAIN): wait until the console has sent everything, then power off.
stty -F /dev/console sane 2>/dev/null
poweroff -f
"""


# ---------------------------------------------------------------- initramfs (cpio newc)

class Cpio:
    """A cpio archive in the kernel's newc format, built in memory."""

    def __init__(self):
        self.data = bytearray()
        self.ino = 0
        self.dirs = set()

    def _entry(self, path, mode, body=b"", rdev=(0, 0)):
        name = path.strip("/").encode() + b"\0"
        self.ino += 1
        fields = (self.ino, mode, 0, 0, 1, 0, len(body), 0, 0, *rdev, len(name), 0)
        self.data += b"070701" + "".join(f"{v:08x}" for v in fields).encode() + name
        self.data += b"\0" * (-len(self.data) % 4) + body
        self.data += b"\0" * (-len(self.data) % 4)

    def dir(self, path):
        path = path.strip("/")
        if path and path not in self.dirs:
            self.dir(os.path.dirname(path))
            self.dirs.add(path)
            self._entry(path, 0o040755)

    def file(self, path, body, mode=0o644):
        self.dir(os.path.dirname(path.strip("/")))
        self._entry(path, 0o100000 | mode, body)

    def symlink(self, path, target):
        self.dir(os.path.dirname(path.strip("/")))
        self._entry(path, 0o120777, target.encode())

    def chardev(self, path, major, minor, mode=0o600):
        self.dir(os.path.dirname(path.strip("/")))
        self._entry(path, 0o020000 | mode, rdev=(major, minor))

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.data + b"\0" * (-len(self.data) % 512))


def _modname(path):
    return re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(path)).replace("-", "_")


def _module_order(kernel, names):
    """Module files (relative to modules_dir) to load for `names`, dependencies
    first; built-in ones left out."""
    deps = {}
    for line in (kernel.modules_dir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {_modname(p): p for p in deps}
    builtin_file = kernel.modules_dir / "modules.builtin"
    builtin = ({_modname(p) for p in builtin_file.read_text().split()}
               if builtin_file.exists() else set())
    order = []

    def visit(path):
        if path not in order:
            for d in deps[path]:
                visit(d)
            order.append(path)
    for name in names:
        name = name.replace("-", "_")
        if name in builtin:
            continue
        if name not in by_name:
            raise VMError(f"kernel {kernel.name} ({kernel.release}) has no module {name}, "
                          "neither built in nor in modules.dep")
        visit(by_name[name])
    return order


def _modinfo_depends(ko_bytes):
    m = re.search(rb"(?:^|\0)depends=([^\0]*)", ko_bytes)
    return [d.decode() for d in m[1].split(b",") if d] if m else []


def _decompress(path):
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dcq", str(path)], check=True, capture_output=True).stdout
    return path.read_bytes()


def _busybox():
    """busybox's bytes and applets; it must be static (no C library in the guest)."""
    try:
        elf = BUSYBOX.read_bytes()
        applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True,
                                 check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        applets = None
    if not applets or any(ptype == 3 for ptype, _, _ in elf_segments(elf)):     # PT_INTERP
        raise VMError(f"{BUSYBOX} is missing or not static: install busybox-static "
                      "(scripts/setup.sh)")
    return elf, applets


def initramfs(kernel, driver_ko=None):
    """The guest's base initramfs (gzip'd cpio) for kernel, cached in build/vm/
    on a hash of its inputs. Per-run settings go into a second archive (run())."""
    order = _module_order(kernel, MODULES)
    driver = Path(driver_ko).read_bytes() if driver_ko else None
    if driver:
        for m in _module_order(kernel, _modinfo_depends(driver)):
            if m not in order:
                order.append(m)
    h = hashlib.sha256(Path(__file__).read_bytes())    # this builder and INIT
    h.update(json.dumps([kernel.release, str(kernel.modules_dir), order]).encode())
    for p in [BUSYBOX, *(kernel.modules_dir / m for m in order)]:
        st = p.stat()
        h.update(f"{p} {st.st_size} {st.st_mtime_ns}".encode())
    h.update(hashlib.sha256(driver).digest() if driver else b"no driver")
    out = INITRAMFS / f"{kernel.name}-{h.hexdigest()[:16]}.cpio.gz"
    if out.exists():
        os.utime(out)               # recently used: kept by the pruning below
        return out
    a = Cpio()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run",
              "newroot", "etc/p2p-dax", "lib/modules", "root"):
        a.dir(d)
    a.chardev("dev/console", 5, 1)
    busybox, applets = _busybox()
    a.file("bin/busybox", busybox, 0o755)
    for applet in applets:
        if applet != "bin/busybox":
            a.symlink(applet, "/bin/busybox")
    a.file("init", INIT.encode(), 0o755)
    names = []
    for m in order:                 # decompressed: busybox insmod reads plain .ko only
        name = re.sub(r"\.ko\.\w+$", ".ko", os.path.basename(m))
        a.file(f"lib/modules/{name}", _decompress(kernel.modules_dir / m))
        names.append(name)
    a.file("etc/p2p-dax/modules", ("\n".join(names) + "\n").encode())
    if driver:
        a.file(DRIVER_GUEST_PATH, driver)
    INITRAMFS.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    gz = gzip.compress(a.bytes(), compresslevel=6, mtime=0)
    tmp.write_bytes(gz + b"\0" * (-len(gz) % 512))     # the next archive starts aligned
    tmp.rename(out)
    # keep the 12 most recently used
    for old in sorted(INITRAMFS.glob("*.cpio.gz"), key=lambda p: p.stat().st_mtime)[:-12]:
        old.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------- QEMU

# The IOMMU is created before the devices it translates for.
IOMMU_DEVICE = ("-device", "intel-iommu")
# mitigations=off: the kernel warns that an emulated EPYC lacks the
# microcode its speculation mitigations want; nothing here needs them.
IOMMU_APPEND = "intel_iommu=on iommu.passthrough=0 iommu.strict=1 mitigations=off"
IOMMU_CPU = "EPYC"
# Set to 1, every run() that does not choose boots with the IOMMU on
# (make vm-test IOMMU=1): the whole VM suite with translation.
IOMMU_ENV = "P2P_DAX_VM_IOMMU"


def iommu_default():
    """Whether run(iommu=None) boots with the IOMMU translating (P2P_DAX_VM_IOMMU)."""
    value = os.environ.get(IOMMU_ENV, "0")
    if value not in ("0", "1"):
        raise VMError(f"{IOMMU_ENV}={value}: give 1 (IOMMU on) or 0 (off)")
    return value == "1"


def _topology(ivshmem_file, ivshmem_size, nvme_images, board_socket=None, board_timeout_ms=None,
              nvme1_on_root=False, switch=True):
    """The devices: behind one switch, or with switch=False each on a root
    port of its own (root ports named dn0.. like the switch's ports)."""
    if switch:
        args = ["-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1,slot=1",
                "-device", "x3130-upstream,id=up0,bus=rp0"]
    else:
        args = []
    for i in range(4 if board_socket else 3):
        args += ["-device", f"xio3130-downstream,id=dn{i},bus=up0,chassis={i + 2},slot={i}"
                 if switch else f"pcie-root-port,id=dn{i},bus=pcie.0,chassis={i + 2},slot={i + 2}"]
    if board_socket:
        timeout = f",timeout-ms={board_timeout_ms}" if board_timeout_ms else ""
        args += ["-device", f"p2p-dax-board,socket={board_socket},bus=dn0{timeout}"]
    args += ["-object", f"memory-backend-file,id=ivmem,share=on,mem-path={ivshmem_file},"
                        f"size={ivshmem_size}",
             "-device", f"ivshmem-plain,memdev=ivmem,bus={'dn3' if board_socket else 'dn0'}"]
    for i, img in enumerate(nvme_images):
        cmb = ",cmb_size_mb=16" if i == 0 or nvme1_on_root else ""
        bus = "pcie.0" if i == 1 and nvme1_on_root else f"dn{i + 1}"
        args += ["-drive", f"file={img},if=none,id=nvm{i},format=raw",
                 "-device", f"nvme,serial=n{i},drive=nvm{i}{cmb},bus={bus}"]
    return args


def _virtfs(tag, path, readonly):
    ro = ",readonly=on" if readonly else ""
    return ["-fsdev", f"local,id={tag},path={path},security_model=none,multidevs=remap{ro}",
            "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]


def _qemu_version():
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        raise VMError(f"no {QEMU}: install qemu-system-x86 (scripts/setup.sh)") from None
    return out.split("\n")[0]


def _pick_accel(kernel):
    """tcg or kvm: P2P_DAX_VM_ACCEL, else KVM if a short boot with it printed
    the marker within 20 s (the answer is cached in .cache/vm/accel.json)."""
    forced = os.environ.get("P2P_DAX_VM_ACCEL")
    if forced:
        if forced not in ("tcg", "kvm"):
            raise VMError(f"P2P_DAX_VM_ACCEL={forced}: use tcg or kvm")
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    key = [_qemu_version(), os.uname().release]
    STATE.mkdir(parents=True, exist_ok=True)
    cache = STATE / "accel.json"
    with open(STATE / "accel.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            saved = json.loads(cache.read_text())
            if saved["key"] == key:
                return saved["accel"]
        except (OSError, ValueError, KeyError):
            pass
        try:
            r = run(kernel, "echo kvm-ok", driver=False, timeout=20, accel="kvm")
            accel = "kvm" if r.returncode == 0 and r.output.strip() == "kvm-ok" else "tcg"
            note = f"probe boot: exit {r.returncode}, {r.seconds:.1f} s"
        except VMError as e:
            accel, note = "tcg", str(e).split("\n")[0]
        cache.write_text(json.dumps({"key": key, "accel": accel, "probe": note}, indent=1) + "\n")
        return accel


def _save_log(kernel, token, console, cmdline, board_log=None):
    """Keep a failed run's console log (and the virtual board's, beside it
    as ...-board.log) in build/vm-logs/; return the console log's path."""
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in sorted(LOGS.glob("*.log"))[:-50]:
        old.unlink(missing_ok=True)
    log = LOGS / f"{time.strftime('%Y%m%d-%H%M%S')}-{kernel.name}-{token}.log"
    log.write_text(f"$ {shlex.join(cmdline)}\n{console}")
    if board_log is not None:
        log.with_name(log.stem + "-board.log").write_text(board_log)
    return log


def _console(proc, deadline, done):
    """Read QEMU's output until it exits or the deadline (then kill it). Once
    done(recent output) holds, wait at most 10 s more for the exit. Return the
    output and whether done() held or QEMU exited by itself."""
    buf = bytearray()
    fd = proc.stdout.fileno()
    finished = False
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            proc.wait()
            return bytes(buf), True
        buf += chunk
        if not finished and done(bytes(buf[-len(chunk) - 100:])):
            finished = True
            deadline = min(deadline, time.monotonic() + 10)
    proc.kill()
    proc.wait()
    return bytes(buf), finished


class VirtualBoard:
    """The RTL's simulation for QEMU's p2p-dax-board device, as a process:
    started before QEMU (its socket appears when it is ready), ended by
    QEMU's exit. Its log and counters are in `directory`."""

    def __init__(self, directory, params=None, env=None):
        self.dir = Path(directory)
        self.socket = self.dir / "board.sock"
        self.stats_file = self.dir / "board-stats.json"
        self.log = self.dir / "board.log"
        cmd = [sys.executable, "-m", "hw.virtual.cosim", "--socket", str(self.socket),
               "--stats", str(self.stats_file), "--params", json.dumps(params or {})]
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})

    def wait_ready(self, timeout=600):
        end = time.monotonic() + timeout
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise VMError(f"the virtual board's simulation did not start: "
                              f"{_tail(self.log.read_text(), 20)}")
            time.sleep(0.2)

    def stop(self, timeout=60):
        """Wait for the simulation to end (QEMU has gone); its counters, or
        VMError with its log when it failed (a PCIe rule broken, a crash)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.returncode:
            raise VMError(f"the virtual board's simulation failed (exit "
                          f"{self.proc.returncode}):\n{_tail(self.log.read_text(), 30)}")
        try:
            return json.loads(self.stats_file.read_text())
        except (OSError, ValueError):
            return {}


def run(kernel, command, *, driver=True, driver_params="memory_bar=2", bind_ivshmem=True,
        host_root=False, ivshmem_file=None, ivshmem_size=None, nvme_images=None, timeout=120,
        extra_append="", extra_files=None, shares=(), cwd=None, accel=None, board=None,
        board_params=None, board_env=None, board_timeout_ms=None, nvme1_on_root=False,
        iommu=None):
    """Boot `kernel` (a name such as "6.1", or a Kernel), run `command` with
    sh -c, return Result(returncode, output, seconds, log).

    driver: True builds driver/ for the kernel, a path is a .ko to use,
    False/None means no driver. driver_params: the module parameters, or None
    to put the module at /lib/modules/p2p_dax.ko without loading it.
    host_root: run chrooted in the host's / (read-only 9p) in cwd (default:
    the current directory). shares: host directories to mount writable at the
    same paths in the guest. extra_files: {guest path: host file}.
    accel: "tcg" or "kvm" (default: P2P_DAX_VM_ACCEL, else a cached probe).
    board: None (ivshmem only) or "virtual" (the RTL behind QEMU's
    p2p-dax-board device; board_params: EndpointParams fields for it;
    board_env: more environment for its simulation, such as P2P_DAX_FAULT, in
    which case a failed simulation is reported in Result.board["error"]
    rather than raised; board_timeout_ms: the device's timeout-ms).
    ivshmem_size defaults to the file's size, or 64 MiB; nvme_images: two raw
    images (default: temporary 64 MiB ones); the first NVMe has a 16 MiB
    CMB; nvme1_on_root: the second one too, and it sits on the root bus,
    outside the switch (a peer that only the host bridge connects).
    iommu: QEMU's intel-iommu, with the guest translating every device's DMA
    (intel_iommu=on, no passthrough, strict invalidation), and an AMD Zen
    CPU model (EPYC), whose host bridges the kernel's P2P rules trust: peers
    on different root ports are then reached through the IOMMU. QEMU sends
    every DMA through the IOMMU, even peer to peer under one switch, where
    hardware routes it past the root (the kernel maps such peers with bus
    addresses, which then fault): with the IOMMU on, each device sits on a
    root port of its own, where QEMU and the kernel's rules agree.
    iommu=None: P2P_DAX_VM_IOMMU decides (iommu_default). Raises VMError when
    the guest does not finish in `timeout` seconds or dies before the
    command ends."""
    if not isinstance(kernel, Kernel):
        kernel = get_kernel(kernel)
    if iommu is None:
        iommu = iommu_default()
    if driver is True:
        driver = build_driver(kernel)
    ko = Path(driver) if driver else None
    base = initramfs(kernel, ko)
    token = secrets.token_hex(6)
    cwd = str(cwd or os.getcwd())
    shares = [str(Path(s).resolve()) for s in shares]
    for s in shares:
        if not Path(s).is_dir() or any(c.isspace() for c in s):
            raise VMError(f"share {s}: not a directory, or has white space in its path")
    mounts = [(s, "rw") for s in shares]
    if host_root:
        # The guest has its own /tmp, /run and /var/tmp: a working directory
        # there (a clone in /tmp, say) is shared read-only at its place.
        for masked in GUEST_TMPFS:
            rel = os.path.relpath(cwd, masked)
            if not rel.startswith("..") and rel != "." and not any(c.isspace() for c in cwd) and \
                    not any(cwd == s or cwd.startswith(s + "/") for s in shares):
                mounts.insert(0, (os.path.join(masked, rel.split(os.sep)[0]), "ro"))
    conf = {"TOKEN": token, "IVSHMEM_ID": IVSHMEM_ID,
            "LOAD_DRIVER": int(ko is not None and driver_params is not None),
            "DRIVER_PARAMS": driver_params or "", "BIND": int(bool(bind_ivshmem)),
            "HOST_ROOT": int(bool(host_root)), "HANG_DUMP": max(1, int(timeout * 0.75) - 5), "CWD": cwd, "GUEST_TMPFS": " ".join(GUEST_TMPFS),
            "SHARES": " ".join(f"{path}:{mode}" for path, mode in mounts)}
    per_run = Cpio()
    per_run.file("etc/p2p-dax/run.conf",
                 "".join(f"{k}={shlex.quote(str(v))}\n" for k, v in conf.items()).encode())
    per_run.file("etc/p2p-dax/cmd", command.encode())
    for guest_path, host_path in (extra_files or {}).items():
        host_path = Path(host_path)
        per_run.file(guest_path, host_path.read_bytes(), host_path.stat().st_mode & 0o7777)
    accel = accel or _pick_accel(kernel)
    if board not in (None, "virtual"):
        raise VMError(f"board={board!r}: use None (ivshmem only) or 'virtual'")
    qemu = [QEMU]
    if board:
        from vm.qemu_build import build as build_qemu
        qemu = [str(build_qemu(quiet=True)), "-L", "/usr/share/seabios", "-L", "/usr/share/qemu"]

    with tempfile.TemporaryDirectory(prefix="p2p-dax-vm-") as tmp:
        tmp = Path(tmp)
        sim = VirtualBoard(tmp, board_params, board_env) if board else None
        initrd = tmp / "initrd"
        with open(initrd, "wb") as f:        # the kernel unpacks concatenated archives
            with open(base, "rb") as b:
                shutil.copyfileobj(b, f)
            f.write(per_run.bytes())
        if ivshmem_file is None:
            ivshmem_file = tmp / "ivshmem"
            ivshmem_file.touch()
        ivshmem_file = Path(ivshmem_file)
        if ivshmem_size is None:
            ivshmem_size = (ivshmem_file.exists() and ivshmem_file.stat().st_size) or 64 * MiB
        if nvme_images is None:
            nvme_images = [tmp / "nvme0.img", tmp / "nvme1.img"]
            for img in nvme_images:
                with open(img, "wb") as f:
                    f.truncate(64 * MiB)
        if len(nvme_images) != 2:
            raise VMError("nvme_images: give two image files")
        if iommu:
            extra_append = f"{IOMMU_APPEND} {extra_append}"
        cmdline = [*qemu, "-machine", "q35", "-accel", accel, "-cpu", IOMMU_CPU if iommu else "max",
                   "-m", "1G",
                   "-nodefaults", "-display", "none", "-serial", "stdio", "-monitor", "none",
                   "-no-reboot", "-kernel", str(boot_image(kernel)), "-initrd", str(initrd),
                   # The virtual board stalls a vCPU for as long as the RTL's
                   # simulation takes: not a lockup of the guest's.
                   "-append", f"{APPEND} {'nowatchdog ' if board else ''}{extra_append}".strip(),
                   *(IOMMU_DEVICE if iommu else ()),
                   *_topology(ivshmem_file, ivshmem_size, nvme_images,
                              sim.socket if sim else None, board_timeout_ms, nvme1_on_root,
                              switch=not iommu)]
        if host_root:
            cmdline += _virtfs("hostroot", "/", readonly=True)
        for i, (path, mode) in enumerate(mounts):
            cmdline += _virtfs(f"share{i}", path, readonly=mode == "ro")

        exit_re = re.compile(rb"\nP2P-DAX-VM-EXIT-" + token.encode() + rb" (\d+)\r?\n")
        if sim:
            sim.wait_ready()
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(cmdline, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except FileNotFoundError:
            if sim:
                sim.proc.kill()
            raise VMError(f"no {QEMU}: install qemu-system-x86 (scripts/setup.sh)") from None
        with proc:
            raw, ended = _console(proc, t0 + timeout, exit_re.search)
        seconds = time.monotonic() - t0
        board_stats = board_log = None
        if sim:
            try:
                board_stats = sim.stop()
            except VMError as e:
                if board_env:
                    board_stats = {"error": str(e)}
                else:
                    log = _save_log(kernel, token, raw.decode(errors="replace"), cmdline,
                                    sim.log.read_text(errors="replace"))
                    raise VMError(f"{e}\nconsole log: {log}") from None
            board_log = sim.log.read_text(errors="replace")

    console = raw.decode(errors="replace").replace("\r\n", "\n")
    start = f"P2P-DAX-VM-START-{token}\n"
    m = re.search(f"\nP2P-DAX-VM-EXIT-{token} (\\d+)\n", console)
    if start not in console or not m:
        log = _save_log(kernel, token, console, cmdline, board_log)
        why = (f"did not finish within {timeout} s (QEMU killed)" if not ended else
               f"QEMU exited (status {proc.returncode}) before the command ended")
        raise VMError(f"VM {kernel.name} ({accel}): {why}; console log: {log}\n"
                      f"{_tail(console)}")
    output = console[console.index(start) + len(start):m.start()]
    rc = int(m[1])
    log = _save_log(kernel, token, console, cmdline, board_log) if rc else None
    return Result(rc, output, seconds, log, board_stats)


def _tail(text, lines=60):
    tail = text.rstrip("\n").split("\n")[-lines:]
    return "\n".join(("console, last lines:", *tail)) if text.strip() else "(no console output)"
