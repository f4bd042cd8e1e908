#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Check p2p_dax_compat.h against the target kernel, after p2p_dax.ko is built:
#  - every dax core symbol the module uses is exported by the kernel
#    (Module.symvers of KDIR);
#  - struct dev_dax_data as compiled into p2p_dax.ko (DWARF) has the same
#    members, offsets and size as the kernel's own (BTF), compared by pahole
#    (Debian package dwarves).
# Usage: check-abi.sh KDIR BTF   (BTF: a vmlinux with a .BTF section, or
# /sys/kernel/btf/vmlinux; empty: skip the struct check and say so)
set -eu
kdir=$1
btf=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
ko=$here/p2p_dax.ko

[ -f "$ko" ] || { echo "check-abi: build p2p_dax.ko first (make)" >&2; exit 1; }
[ -f "$kdir/Module.symvers" ] || { echo "check-abi: $kdir/Module.symvers missing" >&2; exit 1; }

status=0
for sym in $(nm -u "$ko" | awk '{print $2}' | grep -E '^(alloc_dax_region|devm_create_dev_dax|dax_region_put)$'); do
    if ! awk -v s="$sym" '$2 == s { found = 1 } END { exit !found }' "$kdir/Module.symvers"; then
        echo "check-abi: the kernel does not export $sym: extend p2p_dax_compat.h for it" >&2
        status=1
    fi
done

if [ -z "$btf" ]; then
    echo "check-abi: no BTF for this kernel (pass BTF=vmlinux); struct dev_dax_data not checked"
    exit $status
fi
command -v pahole >/dev/null || { echo "check-abi: pahole not found (apt-get install dwarves)" >&2; exit 1; }
# pahole's exit code and warnings say nothing here: newer ones warn about BTF
# tags they skip, and fail on a module's .BTF.base after printing the struct.
theirs=$(pahole -F btf -C dev_dax_data "$btf" 2>/dev/null) || true
case $theirs in *"struct dev_dax_data {"*) ;; *)
    echo "check-abi: no struct dev_dax_data in $btf (pahole $(pahole --version))" >&2; exit 1;;
esac
ours=$(pahole -F dwarf -C dev_dax_data "$ko" 2>/dev/null) || true
case $ours in *"struct dev_dax_data {"*) ;; *)
    echo "check-abi: p2p_dax.ko has no debug info for struct dev_dax_data" >&2; exit 1;;
esac
if [ "$theirs" != "$ours" ]; then
    echo "check-abi: struct dev_dax_data in p2p_dax_compat.h does not match the kernel:" >&2
    printf '%s\n' "--- kernel ($btf)" "$theirs" "--- p2p_dax_compat.h" "$ours" >&2
    exit 1
fi
[ $status -eq 0 ] && echo "check-abi: p2p_dax_compat.h matches the kernel"
exit $status
