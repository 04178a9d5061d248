#!/bin/busybox sh
# The guest's init on a cached root tree: runs vng's --exec script (virtme.exec=`base64`
# on the kernel command line) with its stdin/stdout/stderr on vng's virtio-serial ports,
# then powers off. It does what the harness's loop needs of virtme-ng's init and nothing
# else: no udev (the ports are found by name in sysfs; no /dev/virtio-ports links), no
# overlays, hostname, users or network. Under TCG every exec costs 10-100 ms, so this
# makes five: vng's bash init (the one a foreign-arch guest gets) took 1.3-1.6 s from
# init to script on arm64. It runs in busybox's sh, which runs mount, mkdir, base64 and
# setsid as its own applets (the tree's busybox is static): init to script 0.20 s on
# arm64 and 0.18 s on x86_64 under TCG, against 0.28 and 0.24 s in dash with the tree's
# dynamically linked tools. The loop itself runs in /bin/sh (dash), the shell the
# harness's commands are written for. Installed into the tree by rootfs.py.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
export PATH HOME
mount -t proc -o nosuid,noexec,nodev proc /proc
mkdir -p /dev/pts /dev/shm
# the rest in one exec of busybox's mount (debugfs and tracefs as both of vng's inits
# mount them: bpf_printk's trace_pipe, legacy kprobes; a kernel without them skips them)
mount -a -T /proc/self/fd/3 3<<EOF 2>/dev/null
sys /sys sysfs nosuid,noexec,nodev 0 0
run /run tmpfs mode=0755 0 0
tmp /tmp tmpfs mode=1777 0 0
devpts /dev/pts devpts gid=5,mode=620,noexec,nosuid 0 0
shm /dev/shm tmpfs mode=1777,nosuid,nodev 0 0
cgroup2 /sys/fs/cgroup cgroup2 defaults 0 0
debugfs /sys/kernel/debug debugfs defaults 0 0
tracefs /sys/kernel/tracing tracefs defaults 0 0
EOF
for port in /sys/class/virtio-ports/vport*; do
    read -r name <"$port/name"
    case $name in
    virtme.stdin) stdin=/dev/${port##*/} ;;
    virtme.stdout) stdout=/dev/${port##*/} ;;
    virtme.stderr) stderr=/dev/${port##*/} ;;
    esac
done
read -r cmdline </proc/cmdline
set -f  # the words split below are not file patterns
script=
for word in $cmdline; do
    case $word in virtme.exec=*) script=${word#virtme.exec=?}; script=${script%?} ;; esac
done
echo "<6>harness-init: starting script" >/dev/kmsg
printf '%s' "$script" | base64 -d >/run/harness-script &&
    busybox setsid /bin/sh /run/harness-script <"$stdin" >"$stdout" 2>"$stderr"
echo "<6>harness-init: script returned $?" >/dev/kmsg
poweroff -f
