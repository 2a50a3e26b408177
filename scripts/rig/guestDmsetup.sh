#!/bin/sh
# /usr/local/sbin/dmsetup in a rig guest, ahead of the real one (/tools/bin/dmsetup)
# on PATH: a stand-in for udev's rules, which the guest does not run.
#
# Without udev, dmsetup "trusts udev" to make /dev/mapper/NAME and skips it (seen
# with -vvv: "Skipping NODE_ADD ... [trust_udev]"; --noudevsync and --noudevrules do
# not change that), so a create leaves no node and a remove leaves a stale one. After
# a command that adds, renames or removes a device this runs `dmsetup mknodes`, which
# makes /dev/mapper match the kernel, as udev would have. Output and exit code are
# the real dmsetup's.
/tools/bin/dmsetup "$@"
code=$?
case " $* " in
  *" create "*|*" remove "*|*" remove_all "*|*" resume "*|*" rename "*)
    /tools/bin/dmsetup mknodes > /dev/null 2>&1 < /dev/null ;;
esac
exit $code
