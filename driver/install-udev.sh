#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Give the group p2pdax the device nodes of p2p_dax boards (60-p2p-dax.rules):
# create the system group p2pdax when it is missing, install the rule into
# /etc/udev/rules.d, reload udev and apply the rule to the nodes that exist.
# Run as root (`sudo make -C driver install-udev`); then add users to the
# group: `sudo usermod -aG p2pdax USER` (effective at their next login).
# DKMS installs the module only, never udev rules: this is a separate step.
# DESTDIR=/some/root installs into that root instead (an image being built):
# the group goes into its /etc/group and udev is left alone.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${DESTDIR:-}
group=p2pdax

# The group first: udev warns about a rule naming an unknown group.
if [ -z "$dest" ]; then
    if getent group "$group" >/dev/null; then
        echo "install-udev: group $group exists"
    else
        groupadd --system "$group"
        echo "install-udev: created the system group $group"
    fi
else
    if grep -q "^$group:" "$dest/etc/group" 2>/dev/null; then
        echo "install-udev: group $group exists in $dest"
    else
        groupadd --prefix "$dest" --system "$group"
        echo "install-udev: created the system group $group in $dest"
    fi
fi

install -D -m 0644 "$here/60-p2p-dax.rules" "$dest/etc/udev/rules.d/60-p2p-dax.rules"
echo "install-udev: installed $dest/etc/udev/rules.d/60-p2p-dax.rules"

if [ -z "$dest" ]; then
    if command -v udevadm >/dev/null && [ -S /run/udev/control ]; then
        udevadm control --reload
        udevadm trigger --subsystem-match=dax --subsystem-match=misc
        echo "install-udev: udev reloaded; existing dax and p2p-dax nodes updated"
    else
        echo "install-udev: udev is not running here: the rule applies from its next start"
    fi
fi
