// LVM's rules for names and tags (lib/misc/lvm-string.c, tools/toollib.c), so a
// batch with a bad name is refused before lvm runs instead of half-way through.

export const MAX_NAME_CHARS = 127;
export const MAX_TAG_CHARS = 1024;

const NAME_CHARS = /^[A-Za-z0-9+_.-]+$/;
const TAG_CHARS = /^[A-Za-z0-9_+.\-/=!:&#]+$/;
// Suffixes lvm reserves for the hidden sub-LVs of mirrors, RAID, thin and cache pools.
const RESERVED_LV_SUBSTRINGS = [
  '_cdata', '_cmeta', '_corig', '_cpool', '_cvol', '_imeta', '_iorig', '_mimage', '_mlog',
  '_pmspare', '_rimage', '_rmeta', '_tdata', '_tmeta', '_vdata', '_vorigin', '_wcorig',
];

/** Why `name` is not a valid VG or LV name, or undefined when it is. */
export function invalidNameReason(name: string, kind: 'VG' | 'LV'): string | undefined {
  if (name.length === 0) return `${kind} name is empty`;
  if (name.length > MAX_NAME_CHARS) return `${kind} name is longer than ${MAX_NAME_CHARS} characters`;
  if (!NAME_CHARS.test(name)) return `${kind} name "${name}" may only contain A-Z a-z 0-9 + _ . -`;
  if (name.startsWith('-')) return `${kind} name "${name}" may not start with "-"`;
  if (name === '.' || name === '..') return `${kind} name "${name}" is reserved`;
  if (kind === 'LV') {
    if (name.startsWith('snapshot') || name.startsWith('pvmove')) return `LV name "${name}" starts with a reserved prefix`;
    const reserved = RESERVED_LV_SUBSTRINGS.find((s) => name.includes(s));
    if (reserved) return `LV name "${name}" contains the reserved "${reserved}"`;
  }
  return undefined;
}

/** Why `tag` is not a valid LVM tag, or undefined when it is. */
export function invalidTagReason(tag: string): string | undefined {
  if (tag.length === 0) return 'tag is empty';
  if (tag.length > MAX_TAG_CHARS) return `tag is longer than ${MAX_TAG_CHARS} characters`;
  if (!TAG_CHARS.test(tag)) return `tag "${tag}" may only contain A-Z a-z 0-9 _ + . - / = ! : & #`;
  if (tag.startsWith('-')) return `tag "${tag}" may not start with "-"`;
  return undefined;
}
