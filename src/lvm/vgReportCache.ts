// The VG report computed from a metadata text, kept for the next command that reads the
// same text: parsing is most of what a read costs (a pool of 300 LVs: about 100 ms of CPU
// for 330 KB; 10,000 LVs: seconds), and between two master commits every command reads
// the same text. lvm does the same (lvmcache skips parsing a text whose checksum it has
// seen).
//
// The key is where the text is and what the metadata-area header says of it, on every PV
// read: device, PV uuid, device size, and per area its start, the text's offset, size and
// checksum. The text itself is still read and checked against that checksum (diskMetadata.ts)
// before the key is made, so a hit is a text lvm would accept, byte for byte the one the
// report was computed from as far as CRC-32 and its size and place tell. Any commit writes
// the text elsewhere with a new checksum, and the key no longer matches.
//
// One file per VG under /run/thinlv/vg-cache (tmpfs: gone at reboot), written aside and
// renamed into place. A file that is missing, unreadable or for another key is a miss.
//
// Beside it, where lvm last found the VG's PVs: a command run without --devices reads
// those devices directly next time (what is on them is checked as always; a PV moved or
// gone is a miss, and lvm answers and says where they are now).

import { mkdir, open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { VgReport } from '../metadata/vgModel.js';
import type { PvHeaders } from './diskMetadata.js';

export const VG_CACHE_DIR = '/run/thinlv/vg-cache';

/** What identifies the texts the report is computed from. */
export function cacheKeyOf(pvs: readonly PvHeaders[]): string {
  const parts = [...pvs]
    .sort((a, b) => (a.label.pvUuid < b.label.pvUuid ? -1 : a.label.pvUuid > b.label.pvUuid ? 1 : 0))
    .map((pv) => ({
      device: pv.device,
      pvUuid: pv.label.pvUuid,
      deviceSizeBytes: pv.deviceSizeBytes,
      areas: pv.areas.map(({ header }) => [header.startBytes, header.sizeBytes, header.text?.offsetBytes, header.text?.sizeBytes, header.text?.checksum]),
    }));
  return JSON.stringify(parts);
}

const fileOf = (vgName: string, kind = 'json'): string => join(VG_CACHE_DIR, `${vgName}.${kind}`);

/** Writes `content` (a string, or its pieces in order) as `file`, aside then renamed; best effort (see above). */
async function writeAside(file: string, content: string | Iterable<string>): Promise<void> {
  const aside = `${file}.${process.pid}.tmp`;
  try {
    await mkdir(VG_CACHE_DIR, { recursive: true, mode: 0o700 });
    if (typeof content === 'string') {
      await writeFile(aside, content, { mode: 0o600 });
    } else {
      const handle = await open(aside, 'w', 0o600);
      try {
        for (const piece of content) await handle.write(piece);
      } finally {
        await handle.close();
      }
    }
    await rename(aside, file);
  } catch {
    // A cache that cannot be written costs the next command an lvm call or a parse, nothing else.
  }
}

/** LVs per piece of a cache file as it is written. */
const LVS_PER_PIECE = 500;

/**
 * JSON.stringify({ key, report }) in pieces of LVS_PER_PIECE LVs, the key first (filePrefix):
 * at 10,000 LVs the whole text is 4 MB more at the moment a reader's memory peaks (issue 14).
 * JSON.parse of the joined pieces equals JSON.parse of JSON.stringify's text.
 */
export function* cacheFilePieces(key: string, report: VgReport): Generator<string> {
  const { lvs, ...rest } = report;
  let head = `{"key":${JSON.stringify(key)},"report":{`;
  for (const [name, value] of Object.entries(rest)) {
    if (value !== undefined) head += `${JSON.stringify(name)}:${JSON.stringify(value)},`;
  }
  yield `${head}"lvs":[`;
  for (let at = 0; at < lvs.length; at += LVS_PER_PIECE) {
    yield (at === 0 ? '' : ',') + lvs.slice(at, at + LVS_PER_PIECE).map((lv) => JSON.stringify(lv)).join(',');
  }
  yield ']}}';
}

/** How a cache file starts (writeCachedReport writes the key first): what tells a miss without reading the rest. */
const filePrefix = (key: string): Buffer => Buffer.from(`{"key":${JSON.stringify(key)},`);

export async function readCachedReport(vgName: string, key: string): Promise<VgReport | undefined> {
  try {
    const file = await open(fileOf(vgName), 'r');
    try {
      // After a commit the file holds the previous text's report (megabytes at 10,000 LVs):
      // its key alone says so, and parsing the rest would only make garbage beside the parse
      // of the new text, at the moment a reader's memory peaks.
      const prefix = filePrefix(key);
      const { bytesRead, buffer } = await file.read(Buffer.alloc(prefix.length), 0, prefix.length, 0);
      if (bytesRead !== prefix.length || !buffer.equals(prefix)) return undefined;
      const cached = JSON.parse(await file.readFile('utf8')) as { key?: unknown; report?: VgReport };
      return cached.key === key && cached.report?.name === vgName ? cached.report : undefined;
    } finally {
      await file.close();
    }
  } catch {
    return undefined;
  }
}

export function writeCachedReport(vgName: string, key: string, report: VgReport): Promise<void> {
  return writeAside(fileOf(vgName), cacheFilePieces(key, report));
}

/** The devices lvm last named as the VG's PVs, or undefined. */
export async function rememberedDevices(vgName: string): Promise<string[] | undefined> {
  try {
    const devices = JSON.parse(await readFile(fileOf(vgName, 'devices'), 'utf8')) as unknown;
    return Array.isArray(devices) && devices.length > 0 && devices.every((d) => typeof d === 'string' && d.startsWith('/dev/')) ? devices : undefined;
  } catch {
    return undefined;
  }
}

export function rememberDevices(vgName: string, devices: readonly string[]): Promise<void> {
  return writeAside(fileOf(vgName, 'devices'), JSON.stringify(devices));
}
