// Where a host daemon serves its socket unless told otherwise. A file of its own so that
// a client (`thinlv lvextend`, run as a process per grow by tapdisk's resize hook) finds
// the path without loading the daemon.

export const DEFAULT_SOCKET_DIR = '/run/thinlv';

export const defaultSocketPath = (vg: string): string => `${DEFAULT_SOCKET_DIR}/host-${vg}.sock`;
