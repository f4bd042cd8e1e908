#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Find the BTF of the kernel that KDIR builds modules for, for check-abi.sh.
# Prints the path of a file with it (a vmlinux with a .BTF section, or
# /sys/kernel/btf/vmlinux), or nothing when there is none; says on stderr
# where it came from or where it looked. Tried in this order:
#   1. KDIR/vmlinux: a kernel build tree; Debian's headers carry one since 6.12
#   2. a debug vmlinux: /usr/lib/debug/boot/vmlinux-REL (Debian's
#      linux-image-REL-dbg), /usr/lib/debug/lib/modules/REL/vmlinux
#   3. /sys/kernel/btf/vmlinux, when REL is the running kernel (uname -r):
#      it describes the running kernel only
#   4. the kernel image (IMAGE, else /boot/vmlinuz-REL or
#      /lib/modules/REL/vmlinuz), decompressed into SCRATCH (gzip, xz or zstd)
# REL is the kernel release KDIR was configured for
# (include/generated/utsrelease.h). Under DKMS for a kernel that is being
# installed, 4 is what finds Debian 12's 6.1 (its headers have no vmlinux).
# Usage: find-btf.sh KDIR SCRATCH [IMAGE]
set -u
kdir=$1
scratch=$2
image=${3:-}

note() { echo "find-btf: $*" >&2; }
has_btf() { readelf -S -W "$1" 2>/dev/null | grep -q ' \.BTF '; }
found() { note "BTF of $rel: $1 ($2)"; echo "$1"; exit 0; }

rel=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$kdir/include/generated/utsrelease.h" 2>/dev/null)
[ -n "$rel" ] || { note "no kernel release in $kdir/include/generated/utsrelease.h"; exit 0; }

[ -f "$kdir/vmlinux" ] && has_btf "$kdir/vmlinux" && found "$kdir/vmlinux" "the build tree's vmlinux"
for f in "/usr/lib/debug/boot/vmlinux-$rel" "/usr/lib/debug/lib/modules/$rel/vmlinux"; do
    [ -f "$f" ] && has_btf "$f" && found "$f" "debug vmlinux"
done
if [ "$rel" = "$(uname -r)" ] && [ -r /sys/kernel/btf/vmlinux ]; then
    found /sys/kernel/btf/vmlinux "the running kernel's"
fi

# 4. The image: an x86 bzImage holds the compressed vmlinux as its payload
# (boot protocol: setup_sects at 0x1f1, payload_offset and payload_length at
# 0x248). xz and zstd payloads end with the 4-byte uncompressed size.
if [ -z "$image" ]; then
    for f in "/boot/vmlinuz-$rel" "/lib/modules/$rel/vmlinuz"; do
        [ -f "$f" ] && { image=$f; break; }
    done
fi
if [ -z "$image" ]; then
    note "no BTF for $rel: no vmlinux in $kdir, no debug vmlinux, not the running kernel" \
         "and no /boot/vmlinuz-$rel"
    exit 0
fi
if [ ! -r "$image" ]; then
    note "no BTF for $rel: cannot read $image"
    exit 0
fi
u8() { od -An -tu1 -j "$1" -N 1 "$image" | tr -d ' '; }
u32() { od -An -tu4 -j "$1" -N 4 "$image" | tr -d ' '; }
if [ "$(dd if="$image" bs=1 skip=514 count=4 2>/dev/null)" != HdrS ]; then
    note "no BTF for $rel: $image is not a bzImage"
    exit 0
fi
setup=$(u8 497)
start=$(( (${setup:-0} == 0 ? 4 : setup) * 512 + 512 + $(u32 584) ))
length=$(u32 588)
payload() { tail -c +$((start + 1)) "$image" | head -c "$1"; }
magic=$(payload 6 | od -An -tx1 | tr -d ' \n')
case $magic in
    1f8b*)          tool=gzip; unpack() { payload "$length" | gzip -dc 2>/dev/null; } ;;
    fd377a585a00)   tool=xz; unpack() { payload "$length" | xz -dc --single-stream; } ;;
    28b52ffd*)      tool=zstd; unpack() { payload $((length - 4)) | zstd -dcq; } ;;
    *)              note "no BTF for $rel: $image is compressed in a way not handled here ($magic)"
                    exit 0;;
esac
if ! command -v $tool >/dev/null; then
    note "no BTF for $rel: $image is $tool-compressed and $tool is not installed"
    exit 0
fi
unpack > "$scratch"
if has_btf "$scratch"; then
    found "$scratch" "decompressed from $image"
fi
note "no BTF for $rel: $image holds no vmlinux with a .BTF section"
exit 0
