// CRC32C (Castagnoli), written from journal/FORMAT.md's definition: reflected
// polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF. Bitwise
// table, one byte at a time: a checker values being obviously right over speed.

const TABLE = new Uint32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  TABLE[n] = c >>> 0;
}

/** CRC32C of the concatenation of `parts`. */
export function crc32c(...parts: readonly Uint8Array[]): number {
  let crc = 0xffffffff;
  for (const part of parts) {
    for (let i = 0; i < part.length; i++) crc = (TABLE[(crc ^ part[i]!) & 0xff]! ^ (crc >>> 8)) >>> 0;
  }
  return (crc ^ 0xffffffff) >>> 0;
}
