#!/bin/sh
# The rig's command agent (busybox sh), on the virtio-serial port given as $1.
#
# Protocol: one line per message, fields separated by single spaces, binary-safe
# because every payload is base64 (without line breaks; "-" stands for empty).
#
#   host -> guest   C <id> <timeoutSeconds> <base64 of a shell command line>
#   guest -> host   R <id> <exitCode> <base64 of stdout> <base64 of stderr>
#
# Each command runs in its own background subshell under `timeout -s KILL`, with
# stdin from /dev/null, so several may run at once (a writer and an extend); a reply
# is written whole under a lock (a directory), so replies never interleave. Ids are the host's:
# a reply to an id the host has given up on is ignored there. A virtio-serial port
# can be opened once only, so the port is opened here on fd 3 and inherited.

port=$1
[ -c "$port" ] || { echo "rig-agent: no port '$port'"; sleep 5; exit 1; }
work=/tmp/rig-agent
mkdir -p "$work"
rmdir "$work/lock" 2> /dev/null
exec 3<> "$port"

run_one() {
  id=$1 seconds=$2 payload=$3
  dir=$work/$id
  mkdir -p "$dir"
  if [ "$payload" = - ]; then : > "$dir/cmd"; else echo "$payload" | base64 -d > "$dir/cmd"; fi
  # fd 3 (the port) is closed for the command: lvm complains of leaked descriptors.
  (cd /root && timeout -s KILL "$seconds" sh "$dir/cmd" < /dev/null > "$dir/out" 2> "$dir/err" 3>&-)
  code=$?
  out=$(base64 "$dir/out" | tr -d '\n')
  err=$(base64 "$dir/err" | tr -d '\n')
  printf 'R %s %s %s %s\n' "$id" "$code" "${out:--}" "${err:--}" > "$dir/reply"
  # busybox-static has no flock: mkdir is the atomic test-and-set.
  until mkdir "$work/lock" 2> /dev/null; do usleep 20000; done
  cat "$dir/reply" >&3
  rmdir "$work/lock"
  rm -rf "$dir"
}

while read -r kind id seconds payload <&3; do
  case "$kind" in
    C) case "$id$seconds" in *[!0-9a-z]*|'') continue ;; esac
       run_one "$id" "$seconds" "$payload" &
       ;;
  esac
done
