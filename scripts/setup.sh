#!/usr/bin/env bash
# Set up this repository on a Debian 12 machine: .venv with the project installed
# editable with extras [sim,test] (hdl comes with sim), Icarus Verilog on PATH,
# and the tools of the VM harness (vm/).
# Idempotent; a re-run skips pip while .venv/.setup-stamp is newer than pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP=$VENV/.setup-stamp
is_root() { [ "$(id -u)" -eq 0 ]; }
apt_updated=
apt_install() {
    if [ -z "$apt_updated" ]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. Python virtual environment
if [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/pip" ]; then
    echo "setup: $VENV exists"
else
    if [ -e "$VENV" ] && [ ! -f "$VENV/pyvenv.cfg" ]; then
        echo "setup: $VENV exists and is not a virtual environment: move it away" >&2
        exit 1
    fi
    # --clear: start again from a venv that an earlier failed attempt left without pip.
    # Debian's python3 cannot make a venv (no ensurepip) until python3-venv is installed.
    how="created $VENV ($(python3 --version))"
    if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
        if ! is_root; then
            echo "setup: 'python3 -m venv' failed: run 'sudo apt-get install python3-venv'" >&2
            exit 1
        fi
        apt_install python3-venv
        python3 -m venv --clear "$VENV"
        how="installed python3-venv (apt), $how"
    fi
    echo "setup: $how"
fi

# 2. The project and its Python dependencies. The package build compiles the
#    host library's C helpers (cffi) against zlib: gcc and zlib1g-dev.
for pkg in gcc zlib1g-dev; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        if ! is_root; then
            echo "setup: the host library's C helpers need $pkg: run 'sudo apt-get install $pkg'" >&2
            exit 1
        fi
        apt_install "$pkg"
        echo "setup: installed $pkg (apt)"
    fi
done
# Rebuilt when what the package build reads changes.
build_inputs=(pyproject.toml setup.py host/_native_build.py driver/p2p_dax_regs.h
              driver/p2p_dax_ioctl.h)
up_to_date() { for f in "${build_inputs[@]}"; do [ "$STAMP" -nt "$f" ] || return 1; done; }
if [ -f "$STAMP" ] && up_to_date && compgen -G 'host/_native*.so' >/dev/null; then
    echo "setup: Python packages up to date"
else
    if ! "$VENV/bin/python" -m pip install -q -e '.[sim,test,plot]' >"$VENV/pip.log" 2>&1; then
        tail -n 30 "$VENV/pip.log" >&2
        echo "setup: pip install failed; full output in $VENV/pip.log" >&2
        exit 1
    fi
    echo "setup: installed p2p-dax[sim,test,plot] into $VENV (pip)"
fi

# 3. Icarus Verilog
if ! command -v iverilog >/dev/null; then
    if ! is_root; then
        echo "setup: iverilog not found: run 'sudo apt-get install iverilog'" >&2
        exit 1
    fi
    apt_install iverilog
    echo "setup: installed $(iverilog -V 2>/dev/null | head -1) (apt)"
else
    echo "setup: $(iverilog -V 2>/dev/null | head -1 || echo iverilog) found"
fi

# 4. The VM harness (vm/): QEMU, Debian's static busybox for the guest,
#    depmod (kmod) and zstd for the fetched kernels, pahole (dwarves) for 6.12
#    module builds, debootstrap for 7.3's build root, dkms and openssl for
#    tests/test_dkms.py, daxctl and fio for the
#    guest in host-root mode, the virtual board's QEMU build tools; and apt's
#    package lists, which `apt-get download` of the kernels needs.
vm_missing=()
need() {  # need COMMAND-OR-PATH PACKAGE
    command -v "$1" >/dev/null || [ -e "$1" ] || vm_missing+=("$2")
}
need qemu-system-x86_64 qemu-system-x86
dpkg -s busybox-static >/dev/null 2>&1 || vm_missing+=(busybox-static)
need /sbin/depmod kmod
need zstd zstd
need pahole dwarves
need daxctl daxctl
need fio fio
need gcc-12 gcc-12
need make make
need debootstrap debootstrap    # the Debian 13 root that builds modules for 7.3 (vm/newer.py)
need /usr/sbin/dkms dkms        # tests/test_dkms.py: Debian's dkms on the kernels' headers
need openssl openssl            # ... and its throwaway module signing key
# What the virtual board's QEMU build needs (vm/qemu_build.py says, in BUILD_PACKAGES).
for pkg in $("$VENV/bin/python" -c '
from vm import qemu_build
print(*sorted(qemu_build.BUILD_PACKAGES))'); do
    dpkg -s "$pkg" >/dev/null 2>&1 || vm_missing+=("$pkg")
done
apt_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
if [ ${#vm_missing[@]} -eq 0 ] && apt_lists; then
    echo "setup: VM harness tools found"
elif ! is_root; then
    if [ ${#vm_missing[@]} -gt 0 ]; then
        echo "setup: the VM harness needs: run 'sudo apt-get install -y --no-install-recommends ${vm_missing[*]}'" >&2
    fi
    apt_lists || echo "setup: apt has no package lists (the VM harness downloads kernels): run 'sudo apt-get update'" >&2
else
    if ! apt_lists; then apt-get update -qq; apt_updated=1; fi
    if [ ${#vm_missing[@]} -gt 0 ]; then
        apt_install --no-install-recommends "${vm_missing[@]}"
        echo "setup: installed ${vm_missing[*]} (apt)"
    fi
fi

touch "$STAMP"
