#!/usr/bin/env bash
# Builds the test-guest rig of issue 15: a guest kernel, a busybox initramfs and a
# read-only ext4 tools image (node, thinlv's dist/ and node_modules/, lvm, dmsetup and
# their libraries), from Debian's packages. Idempotent: installs only what is missing,
# copies the kernel only when it changed, rebuilds the tools image only when thinlv's
# files are newer than it (THINLV_RIG_FORCE=1 rebuilds everything).
#
#   bash scripts/rig/build.sh           # work directory /var/tmp/thinlv-rig
#   THINLV_RIG_DIR=/somewhere bash scripts/rig/build.sh
#   THINLV_RIG_DIST=dist-h3 bash scripts/rig/build.sh   # thinlv's compiled files from there
#                                                       # (they appear as /tools/thinlv/dist)
#
# It also builds the device-mapper ioctl addon (native/dmIoctl, which `npm ci` builds when
# it can) and requires it: the smoke run checks the ioctl path against dmsetup's.
#
# The kernel package is installed for its files only: it is not made this machine's
# boot kernel (its postinst runs update-initramfs, which is harmless in a container).

set -euo pipefail

started_s=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rig_dir=${THINLV_RIG_DIR:-/var/tmp/thinlv-rig}
force=${THINLV_RIG_FORCE:-0}
dist=${THINLV_RIG_DIST:-dist}
# Modules for virtio block and serial and for device-mapper; their dependencies are
# added from modules.dep. ext4 and crc32c are built into the cloud kernel.
wanted_modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_console dm-mod)
# Dev-only packages left out of the tools image (compilers, bundlers, test runners).
dev_only_modules=(typescript esbuild @esbuild @rolldown rolldown lightningcss lightningcss-linux-x64-gnu @oxc-project vitest @vitest vite fast-check @fast-check @types)

say() { printf 'rig-build: %s\n' "$*"; }
die() { printf 'rig-build: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (apt-get and mke2fs -d with root-owned files need it)"
case "$dist" in */*|''|.|..) die "THINLV_RIG_DIST must be a directory name in the repository, got '$dist'" ;; esac
[ -d "$repo/$dist" ] || die "no $repo/$dist: run 'npm run build' (or tsc --outDir $dist) first"
if [ ! -f "$repo/$dist/bundle/thinlv.js" ]; then
  # The smoke and dm-bench runs use only tsc's output; the others run the CLI bundle.
  [ "$dist" = dist ] && die "no $repo/dist/bundle/thinlv.js: run 'npm run build' first"
  say "WARNING: no $repo/$dist/bundle/thinlv.js: runs that use the thinlv CLI (all but smoke and dm-bench) will fail"
fi

# --- 1. packages -------------------------------------------------------------------
# gcc and libc6-dev (with linux-libc-dev) build the device-mapper ioctl addon.
packages=(qemu-system-x86 linux-image-cloud-amd64 busybox-static e2fsprogs lvm2 dmsetup cpio gcc libc6-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing with apt-get: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; then
    say "apt-get install failed; updating the package lists once and retrying"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  fi
else
  say "packages present: ${packages[*]}"
fi
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 missing after install"

mkdir -p "$rig_dir"

# --- 2. kernel ---------------------------------------------------------------------
# The newest cloud kernel the package brought in (its dependency names the ABI).
kernel_version=$(dpkg-query -W -f='${Depends}' linux-image-cloud-amd64 | grep -o 'linux-image-[0-9][^ ,]*-cloud-amd64' | head -n1 | sed 's/^linux-image-//')
[ -n "$kernel_version" ] || die "cannot tell the kernel version of linux-image-cloud-amd64"
kernel_image=/boot/vmlinuz-$kernel_version
module_dir=/lib/modules/$kernel_version
[ -f "$kernel_image" ] || die "$kernel_image missing"
[ -f "$module_dir/modules.dep" ] || die "$module_dir/modules.dep missing"
if [ "$force" = 1 ] || ! cmp -s "$kernel_image" "$rig_dir/vmlinuz"; then
  say "copying guest kernel $kernel_image"
  cp "$kernel_image" "$rig_dir/vmlinuz.tmp" && mv "$rig_dir/vmlinuz.tmp" "$rig_dir/vmlinuz"
else
  say "guest kernel up to date ($kernel_version)"
fi
echo "$kernel_version" > "$rig_dir/kernel-version"

# --- 3. initramfs ------------------------------------------------------------------
# Modules in load order: each one's dependencies (modules.dep lists them, deepest
# last) before it, each once.
module_path() {
  local name=${1//-/_}
  awk -F: -v want="$name" '{ base = $1; sub(/.*\//, "", base); sub(/\.ko(\.[a-z]+)?$/, "", base); gsub(/-/, "_", base); if (base == want) { print $1; exit } }' "$module_dir/modules.dep"
}
ordered_modules=()
add_module_path() {
  local path=$1 dependency
  for existing in "${ordered_modules[@]:-}"; do [ "$existing" = "$path" ] && return 0; done
  local dependencies
  dependencies=$(awk -F: -v want="$path" '$1 == want { print $2; exit }' "$module_dir/modules.dep")
  # modules.dep lists dependencies so that the last must load first.
  for dependency in $(echo "$dependencies" | tr ' ' '\n' | tac); do add_module_path "$dependency"; done
  ordered_modules+=("$path")
}
for module in "${wanted_modules[@]}"; do
  path=$(module_path "$module")
  if [ -z "$path" ]; then
    grep -q "/${module//-/[-_]}\.ko" "$module_dir/modules.builtin" && { say "module $module is built in"; continue; }
    die "module $module not found in $module_dir"
  fi
  add_module_path "$path"
done

staging=$(mktemp -d "$rig_dir/initramfs.XXXXXX")
trap 'rm -rf "$staging" "${tools_staging:-}"' EXIT
mkdir -p "$staging"/{bin,sbin,usr/local/sbin,etc/rig,proc,sys,dev,run,tmp,root,lib/modules,tools}
cp "$(command -v busybox)" "$staging/bin/busybox"
file "$staging/bin/busybox" 2> /dev/null | grep -q 'statically linked' || ldd "$staging/bin/busybox" 2>&1 | grep -q 'not a dynamic' || die "busybox is not static (install busybox-static)"
cp "$repo/scripts/rig/guestInit.sh" "$staging/init"
cp "$repo/scripts/rig/guestAgent.sh" "$staging/bin/rig-agent"
mkdir -p "$staging/usr/local/sbin"
cp "$repo/scripts/rig/guestDmsetup.sh" "$staging/usr/local/sbin/dmsetup"
printf '#!/bin/sh\nexec node /tools/thinlv/dist/bundle/thinlv.js "$@"\n' > "$staging/usr/local/sbin/thinlv"
chmod 755 "$staging/init" "$staging/bin/rig-agent" "$staging/usr/local/sbin/dmsetup" "$staging/usr/local/sbin/thinlv"
: > "$staging/etc/rig/modules"
for path in "${ordered_modules[@]}"; do
  mkdir -p "$staging/lib/modules/$(dirname "$path")"
  case "$path" in
    *.ko.xz) xz -dc "$module_dir/$path" > "$staging/lib/modules/${path%.xz}"; path=${path%.xz} ;;
    *.ko.zst) zstd -qdc "$module_dir/$path" > "$staging/lib/modules/${path%.zst}"; path=${path%.zst} ;;
    *) cp "$module_dir/$path" "$staging/lib/modules/$path" ;;
  esac
  echo "$path" >> "$staging/etc/rig/modules"
done
say "initramfs modules: $(sed 's#.*/##' "$staging/etc/rig/modules" | tr '\n' ' ')"
(cd "$staging" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$rig_dir/initramfs.cpio.gz.tmp"
mv "$rig_dir/initramfs.cpio.gz.tmp" "$rig_dir/initramfs.cpio.gz"
say "built $rig_dir/initramfs.cpio.gz"

# --- 4. device-mapper ioctl addon -----------------------------------------------------
addon=native/dmIoctl/build/dmIoctl.node
THINLV_DM_ADDON_REQUIRED=1 node "$repo/native/dmIoctl/build.mjs" || die "the device-mapper ioctl addon did not build"

# --- 5. tools image ----------------------------------------------------------------
tools_image=$rig_dir/tools.img
inputs=("$repo/$dist" "$repo/node_modules" "$repo/package.json" "$repo/$addon" "$repo/scripts/rig/build.sh")
stale=1
if [ "$force" != 1 ] && [ -f "$tools_image" ]; then
  stale=0
  [ -n "$(find "${inputs[@]}" -newer "$tools_image" -print -quit)" ] && stale=1
  for binary in /usr/bin/node /usr/sbin/lvm /usr/sbin/dmsetup; do [ "$(readlink -f "$binary")" -nt "$tools_image" ] && stale=1; done
fi
if [ "$stale" = 0 ]; then
  say "tools image up to date (nothing in $dist/, node_modules/, package.json, the addon or the binaries is newer)"
else
  tools_staging=$(mktemp -d "$rig_dir/tools.XXXXXX")
  mkdir -p "$tools_staging"/{bin,lib,thinlv}
  node_binary=$(readlink -f "$(command -v node)")
  cp "$node_binary" "$tools_staging/bin/node"
  cp "$(readlink -f /usr/sbin/lvm)" "$tools_staging/bin/lvm"
  cp "$(readlink -f /usr/sbin/dmsetup)" "$tools_staging/bin/dmsetup"
  # lvm's own command names, as lvm2 installs them (links to lvm).
  for verb in vgs lvs pvs vgchange lvchange lvcreate lvremove vgcreate pvcreate vgcfgbackup vgcfgrestore vgck vgremove lvextend; do
    ln -s lvm "$tools_staging/bin/$verb"
  done
  say "copying thinlv ($dist/ as dist/, node_modules/ without dev-only packages, package.json, the dm addon)"
  excludes=()
  for module in "${dev_only_modules[@]}"; do excludes+=(--exclude="./node_modules/$module"); done
  (cd "$repo" && tar -cf - "${excludes[@]}" --transform="s,^\./$dist/,./dist/," --transform="s,^\./$dist\$,./dist," ./package.json "./$dist" ./node_modules "./$addon") | tar -xf - -C "$tools_staging/thinlv"
  [ -f "$tools_staging/thinlv/dist/src/dm/deviceMapper.js" ] || die "the tools image has no dist/src/dm/deviceMapper.js (copied from $dist/)"
  # Every ELF file's libraries, flattened into /tools/lib (the guest links
  # /lib/x86_64-linux-gnu there), plus the ELF interpreter.
  libraries=$( { ldd "$tools_staging/bin/node" "$tools_staging/bin/lvm" "$tools_staging/bin/dmsetup";
                 find "$tools_staging/thinlv/node_modules" "$tools_staging/thinlv/native" -name '*.node' -type f -exec ldd {} \; ; } 2> /dev/null |
               awk '/=> \// { print $3 } /^\t\/lib64\// { print $1 }' | sort -u)
  for library in $libraries; do cp -L "$library" "$tools_staging/lib/$(basename "$library")"; done
  cp -L /lib64/ld-linux-x86-64.so.2 "$tools_staging/lib/ld-linux-x86-64.so.2"
  ldd "$tools_staging/bin/node" "$tools_staging/bin/lvm" "$tools_staging/bin/dmsetup" | grep -q 'not found' && die "a library of node, lvm or dmsetup was not found"
  say "libraries: $(ls "$tools_staging/lib" | tr '\n' ' ')"
  used_kib=$(du -sk "$tools_staging" | cut -f1)
  image_mib=$(( used_kib * 13 / 10 / 1024 + 64 ))
  rm -f "$tools_image.tmp"
  mke2fs -q -F -t ext4 -L thinlv-tools -d "$tools_staging" "$tools_image.tmp" "${image_mib}M"
  mv "$tools_image.tmp" "$tools_image"
  rm -rf "$tools_staging"
  say "built $tools_image ($image_mib MiB file system, $((used_kib / 1024)) MiB of files)"
fi

printf 'rig-build: sizes:'
for file in vmlinuz initramfs.cpio.gz tools.img; do
  printf ' %s %s (%s on disk);' "$file" "$(du -h --apparent-size "$rig_dir/$file" | cut -f1)" "$(du -h "$rig_dir/$file" | cut -f1)"
done
echo
say "done in $(( $(date +%s) - started_s )) s; work directory $rig_dir"
