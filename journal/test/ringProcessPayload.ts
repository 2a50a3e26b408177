// The payload of record `seq` in the two-process test: writer and reader compute it
// independently, so the reader can check every byte it got.

export function payloadForSeq(seq: number): Uint8Array {
  const sizeBytes = (seq * 37) % 300 + (seq % 97 === 0 ? 6000 : 0);
  const payload = new Uint8Array(sizeBytes);
  let state = seq >>> 0;
  for (let i = 0; i < sizeBytes; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    payload[i] = state >>> 24;
  }
  return payload;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface ProcessArgs {
  readonly devicePath: string;
  readonly offsetBytes: number;
  readonly lengthBytes: number;
  readonly ringId: string;
  readonly recordCount: number;
}

export function parseProcessArgs(argv: readonly string[]): ProcessArgs {
  const [devicePath, offsetBytes, lengthBytes, ringId, recordCount] = argv;
  if (devicePath === undefined || ringId === undefined) throw new Error('usage: <device> <offsetBytes> <lengthBytes> <ringId> <recordCount>');
  return { devicePath, offsetBytes: Number(offsetBytes), lengthBytes: Number(lengthBytes), ringId, recordCount: Number(recordCount) };
}
