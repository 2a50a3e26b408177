// The shared LUN: one sparse PV (1 MiB pages, unwritten ones read as zeros), so a
// VG of many GiB costs only what the rings wrote. Each process opens its own
// regions on it (src/rings/ringRegions.ts's RegionOpener); every read and write
// passes the process's effect gate, so a crashed process reads and writes nothing
// more. A torn write lands some of its 512-byte sectors, then the writer dies
// (journal/src/memoryRegion.ts's TearPlan, on a disk shared by many processes and
// addressed at the rings' real offsets, which overlap: the lease block is the end
// of the journal LV, and a removed host's extents are reused by later LVs).

import { BLOCK_BYTES, type BlockRegion } from '../../journal/index.js';
import type { RegionOpener, RingLocation } from '../../src/rings/ringRegions.js';
import type { Prng } from './prng.js';
import { SimCrash, type SimKernel, type SimProcess } from './simKernel.js';

const SECTOR = 512;
const PAGE_BYTES = 1024 * 1024;
/** Reads at least this long, inside one page, are served as copy-on-write views. */
const VIEW_MIN_BYTES = 64 * 1024;

export class SimPv {
  /** 1 MiB pages, allocated on first write: a read of an unwritten page is zeros. */
  private readonly pages = new Map<number, Uint8Array>();
  /**
   * Pages a large read handed out as a view (the ring reader's 256 KiB chunks, read-only):
   * the next write to such a page copies it first, so the view keeps the bytes it read.
   */
  private readonly shared = new Set<number>();
  writeCount = 0;
  tornWriteCount = 0;
  bitFlipCount = 0;

  constructor(
    readonly device: string,
    readonly sizeBytes: number,
  ) {}

  read(offsetBytes: number, lengthBytes: number): Uint8Array {
    const index = Math.floor(offsetBytes / PAGE_BYTES);
    const inPage = offsetBytes - index * PAGE_BYTES;
    const page = this.pages.get(index);
    if (lengthBytes >= VIEW_MIN_BYTES && page !== undefined && inPage + lengthBytes <= PAGE_BYTES) {
      this.shared.add(index);
      return page.subarray(inPage, inPage + lengthBytes);
    }
    const out = new Uint8Array(lengthBytes);
    let at = 0;
    while (at < lengthBytes) {
      const absolute = offsetBytes + at;
      const index = Math.floor(absolute / PAGE_BYTES);
      const inPage = absolute - index * PAGE_BYTES;
      const take = Math.min(PAGE_BYTES - inPage, lengthBytes - at);
      const page = this.pages.get(index);
      if (page !== undefined) out.set(page.subarray(inPage, inPage + take), at);
      at += take;
    }
    return out;
  }

  /** Lands `bytes` at `absolute`; they must lie inside one page. */
  private land(absolute: number, bytes: Uint8Array): void {
    const index = Math.floor(absolute / PAGE_BYTES);
    let page = this.pages.get(index);
    if (page === undefined) {
      page = new Uint8Array(PAGE_BYTES);
      this.pages.set(index, page);
    } else if (this.shared.delete(index)) {
      page = page.slice();
      this.pages.set(index, page);
    }
    page.set(bytes, absolute - index * PAGE_BYTES);
  }

  /** Writes whole sectors; `sectors` (indexes into `data`) limits which land. */
  write(offsetBytes: number, data: Uint8Array, sectors?: readonly number[]): void {
    this.writeCount += 1;
    if (sectors === undefined) {
      // A write that lands whole is copied a page at a time (sectors are page-aligned: pages are 1 MiB).
      for (let at = 0; at < data.length; ) {
        const absolute = offsetBytes + at;
        const take = Math.min(PAGE_BYTES - (absolute % PAGE_BYTES), data.length - at);
        this.land(absolute, data.subarray(at, at + take));
        at += take;
      }
    } else {
      this.tornWriteCount += 1;
      for (const sector of sectors) this.land(offsetBytes + sector * SECTOR, data.subarray(sector * SECTOR, (sector + 1) * SECTOR));
    }
  }

  /** Flips one bit somewhere in [offsetBytes, offsetBytes + lengthBytes), if any of it was written. */
  flipBit(prng: Prng, offsetBytes: number, lengthBytes: number): boolean {
    const firstPage = Math.floor(offsetBytes / PAGE_BYTES);
    const lastPage = Math.floor((offsetBytes + lengthBytes - 1) / PAGE_BYTES);
    const written = [...this.pages.keys()].filter((p) => p >= firstPage && p <= lastPage).sort((a, b) => a - b);
    if (written.length === 0) return false;
    const absolute = offsetBytes + prng.int(lengthBytes);
    const index = Math.floor(absolute / PAGE_BYTES);
    let page = this.pages.get(index);
    if (page === undefined) return false;
    if (this.shared.delete(index)) {
      page = page.slice();
      this.pages.set(index, page);
    }
    const byte = absolute % PAGE_BYTES;
    page[byte] = page[byte]! ^ (1 << prng.int(8));
    this.bitFlipCount += 1;
    return true;
  }
}

/** What the simulator decides for one write of `proc`: land it, or tear it (then `proc` dies). */
export type WritePlan = (proc: SimProcess, sectorCount: number) => readonly number[] | undefined;

class SimRegion implements BlockRegion {
  readonly description: string;
  private closed = false;

  constructor(
    private readonly pv: SimPv,
    private readonly offsetBytes: number,
    readonly sizeBytes: number,
    private readonly proc: SimProcess,
    private readonly kernel: SimKernel,
    private readonly plan: WritePlan,
  ) {
    this.description = `sim ${pv.device} @ ${offsetBytes}+${sizeBytes} (${proc})`;
  }

  allocateBuffer(lengthBytes: number): Uint8Array {
    return new Uint8Array(lengthBytes);
  }

  private check(offsetBytes: number, lengthBytes: number): void {
    if (this.closed) throw new Error(`${this.description}: I/O on a closed region`);
    if (offsetBytes % BLOCK_BYTES !== 0 || lengthBytes % BLOCK_BYTES !== 0 || lengthBytes <= 0) throw new Error(`${this.description}: unaligned I/O ${offsetBytes}+${lengthBytes}`);
    if (offsetBytes < 0 || offsetBytes + lengthBytes > this.sizeBytes) throw new Error(`${this.description}: I/O ${offsetBytes}+${lengthBytes} outside the region`);
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    this.check(offsetBytes, lengthBytes);
    await this.kernel.point(this.proc, 'region.read');
    return this.pv.read(this.offsetBytes + offsetBytes, lengthBytes);
  }

  async write(offsetBytes: number, data: Uint8Array): Promise<void> {
    this.check(offsetBytes, data.length);
    await this.kernel.point(this.proc, 'region.write');
    const torn = this.plan(this.proc, data.length / SECTOR);
    if (torn !== undefined) {
      this.pv.write(this.offsetBytes + offsetBytes, data, torn);
      this.kernel.crash(this.proc);
      throw new SimCrash(this.proc.toString(), 'torn write');
    }
    this.pv.write(this.offsetBytes + offsetBytes, data);
    await this.kernel.point(this.proc, 'region.afterWrite');
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** The RegionOpener of one process: ring locations map to regions of the shared PV. */
export function simRegionOpener(pvs: ReadonlyMap<string, SimPv>, proc: SimProcess, kernel: SimKernel, plan: WritePlan): RegionOpener {
  return {
    async open(location: RingLocation): Promise<BlockRegion> {
      await kernel.point(proc, 'region.open');
      const pv = pvs.get(location.device);
      if (pv === undefined) throw new Error(`sim: no PV ${location.device}`);
      if (location.offsetBytes + location.lengthBytes > pv.sizeBytes) throw new Error(`sim: region ${location.offsetBytes}+${location.lengthBytes} past the end of ${pv.device}`);
      return new SimRegion(pv, location.offsetBytes, location.lengthBytes, proc, kernel, plan);
    },
  };
}
