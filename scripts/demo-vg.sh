#!/usr/bin/env bash
# Makes (or removes) a throw-away volume group on a loop device over a sparse
# file, so a newcomer can try thinlv without a SAN:
#   sudo scripts/demo-vg.sh create   -> prints the VG name and its device
#   sudo scripts/demo-vg.sh destroy  -> removes the VG, detaches the loop device
# It touches only the loop device it attached (recorded in the state file).
set -euo pipefail
STATE=/var/tmp/thinlv-demo.state
IMAGE=/var/tmp/thinlv-demo.img
VG=thinlv_demo
lvm_opts() { printf -- '--devices %s' "$1"; if ! dmsetup version >/dev/null 2>&1; then printf -- ' --driverloaded n'; fi; }
case "${1:-}" in
  create)
    if [[ -e $STATE ]]; then echo "demo VG exists already: $(cat "$STATE")" >&2; exit 1; fi
    command -v lvm >/dev/null || { echo "lvm is missing: apt-get install lvm2" >&2; exit 1; }
    truncate -s 8G "$IMAGE"
    dev=$(losetup --find --show "$IMAGE")
    echo "$dev" > "$STATE"
    # shellcheck disable=SC2046
    lvm pvcreate $(lvm_opts "$dev") --metadatasize 64m "$dev" >/dev/null
    # shellcheck disable=SC2046
    lvm vgcreate $(lvm_opts "$dev") -s 4m "$VG" "$dev" >/dev/null
    # shellcheck disable=SC2046
    lvm lvcreate $(lvm_opts "$dev") -an -Zn -ky -L 1g -n vm1_disk --addtag demo "$VG" >/dev/null
    echo "VG $VG on $dev; try: thinlv inspect $VG --devices $dev"
    ;;
  destroy)
    [[ -e $STATE ]] || { echo "no demo VG" >&2; exit 1; }
    dev=$(cat "$STATE")
    # shellcheck disable=SC2046
    lvm vgremove $(lvm_opts "$dev") -f "$VG" >/dev/null || true
    losetup -d "$dev" || true
    # lvm's metadata backups and archives of this demo VG, and only those
    rm -f /etc/lvm/backup/"$VG" /etc/lvm/archive/"$VG"_*.vg
    rm -f "$IMAGE" "$STATE"
    echo "demo VG removed"
    ;;
  *) echo "usage: $0 create|destroy" >&2; exit 2 ;;
esac
