#!/bin/busybox sh
# /init of a rig guest (copied into the initramfs by scripts/rig/build.sh).
#
# Mounts the pseudo file systems, loads the modules listed in /etc/rig/modules (in
# dependency order), mounts the tools drive read-only at /tools, points the dynamic
# loader at its libraries, writes lvm.conf with udev off, and runs the command agent
# on the virtio-serial port named "thinlv.agent". Everything is logged to the serial
# console, which the harness keeps in console.log next to the guest's socket.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /run /tmp /var/tmp /root /etc /mnt
/bin/busybox --install -s
# /usr/local/sbin first: its dmsetup stands in for udev (guestDmsetup.sh).
export PATH=/usr/local/sbin:/tools/bin:/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root LC_ALL=C LANG=C

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/lock /run/lvm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mkdir -p /run/lock/lvm /run/lvm /run/thinlv
mount -t tmpfs tmpfs /tmp

rig_name=$(sed -n 's/.*rig\.name=\([^ ]*\).*/\1/p' /proc/cmdline)
hostname "${rig_name:-rig}"
echo "rig-init: ${rig_name:-rig} starting, kernel $(uname -r)"

while read -r module; do
  [ -n "$module" ] || continue
  insmod "/lib/modules/$module" || echo "rig-init: insmod $module failed"
done < /etc/rig/modules

# virtio devices appear asynchronously after their driver loads.
device_by_serial() {
  for block in /sys/block/vd*; do
    [ -e "$block/serial" ] || continue
    if [ "$(cat "$block/serial")" = "$1" ]; then echo "/dev/${block##*/}"; return 0; fi
  done
  return 1
}
tries=0
until tools=$(device_by_serial thinlv-tools) && lun=$(device_by_serial thinlv-lun); do
  tries=$((tries + 1))
  if [ "$tries" -gt 200 ]; then echo "rig-init: FATAL: tools or LUN drive missing"; ls /sys/block; break; fi
  sleep 0.1
done
mkdir -p /tools
mount -t ext4 -o ro "$tools" /tools || echo "rig-init: FATAL: cannot mount tools drive $tools"
ln -sf "$lun" /dev/rig-lun
echo "rig-init: tools on $tools, LUN on $lun"

# The tools' ELF interpreter and libraries, where ld.so looks without LD_LIBRARY_PATH
# (thinlv runs dmsetup and lvm with a scrubbed environment).
mkdir -p /lib64 /usr/lib
ln -sf /tools/lib /lib/x86_64-linux-gnu
ln -sf /tools/lib /usr/lib/x86_64-linux-gnu
ln -sf /tools/lib/ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2

mkdir -p /etc/lvm/backup /etc/lvm/archive
cat > /etc/lvm/lvm.conf <<'EOF'
devices {
  obtain_device_list_from_udev = 0
  external_device_info_source = "none"
}
activation {
  udev_sync = 0
  udev_rules = 0
  monitoring = 0
}
global {
  event_activation = 0
}
EOF
echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
echo "root:x:0:" > /etc/group

port=
for named in /sys/class/virtio-ports/*; do
  [ "$(cat "$named/name" 2>/dev/null)" = thinlv.agent ] && port=/dev/${named##*/}
done
echo "rig-init: agent port ${port:-MISSING}"
echo "rig-init: ready after $(cut -d' ' -f1 /proc/uptime) s"
while true; do
  /bin/rig-agent "$port"
  echo "rig-init: agent exited with $?; restarting"
  sleep 0.5
done
