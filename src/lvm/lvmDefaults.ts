// Defaults of lvm calls that the command line shows in its help. A file of its own so
// that reading them (every thinlv command defines its options with them) does not load
// the lvm runner and its process library.

export const DEFAULT_LVM_TIMEOUT_MS = 60_000;
