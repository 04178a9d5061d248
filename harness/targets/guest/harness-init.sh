#!/bin/sh
# The guest's init on a cached root tree: runs vng's --exec script (virtme.exec=`base64`
# on the kernel command line) with its stdin/stdout/stderr on vng's virtio-serial ports,
# then powers off. It does what the harness's loop needs of virtme-ng's init and nothing
# else: no udev, overlays, hostname, users or network. Under TCG every exec costs
# 10-100 ms; vng's bash init (the one a foreign-arch guest gets) took 1.4-1.6 s from
# init to script on arm64, this takes ~0.3 s. Installed into the tree by rootfs.py.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
export PATH HOME
mount -t proc -o nosuid,noexec,nodev proc /proc
mount -t sysfs -o nosuid,noexec,nodev sys /sys
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /dev/pts /dev/shm /dev/virtio-ports
mount -t devpts -o gid=5,mode=620,noexec,nosuid devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
# as both of vng's inits do: bpf_printk's trace_pipe, legacy kprobes, debugfs knobs
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# udev's names for the ports (/dev/virtio-ports/NAME -> ../vportNpM)
for port in /sys/class/virtio-ports/vport*; do
    read -r name <"$port/name" && ln -s "../${port##*/}" "/dev/virtio-ports/$name"
done
read -r cmdline </proc/cmdline
set -f  # the words split below are not file patterns
script=
for word in $cmdline; do
    case $word in virtme.exec=*) script=${word#virtme.exec=?}; script=${script%?} ;; esac
done
ports=/dev/virtio-ports
echo "<6>harness-init: starting script" >/dev/kmsg
printf '%s' "$script" | base64 -d >/run/harness-script &&
    setsid sh /run/harness-script <$ports/virtme.stdin >$ports/virtme.stdout 2>$ports/virtme.stderr
echo "<6>harness-init: script returned $?" >/dev/kmsg
poweroff -f
