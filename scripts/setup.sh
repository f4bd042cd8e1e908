#!/usr/bin/env bash
# Set up this repository on a Debian 12 machine: .venv with the project installed
# editable with extras [sim,test] (hdl comes with sim), and Icarus Verilog on PATH.
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

# 2. The project and its Python dependencies
if [ -f "$STAMP" ] && [ "$STAMP" -nt pyproject.toml ]; then
    echo "setup: Python packages up to date"
else
    if ! "$VENV/bin/python" -m pip install -q -e '.[sim,test]' >"$VENV/pip.log" 2>&1; then
        tail -n 30 "$VENV/pip.log" >&2
        echo "setup: pip install failed; full output in $VENV/pip.log" >&2
        exit 1
    fi
    echo "setup: installed p2p-dax[sim,test] into $VENV (pip)"
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

touch "$STAMP"
