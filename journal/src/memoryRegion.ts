// An in-memory "disk" for property and fault tests. A MemoryDisk holds the durable
// bytes; each open() returns a MemoryRegion handle, standing for one process. A
// crash kills every open handle: their in-flight writes never resolve and further
// I/O fails, while everything that already landed stays, as on a real disk. A torn
// write lands only the blocks the test chose, then crashes.

import { BLOCK_BYTES } from './constants.js';
import { assert, JournalError } from './errors.js';
import type { BlockRegion } from './blockRegion.js';

/**
 * Decides which units of the next write land before the crash: returns indexes of
 * units (BLOCK_BYTES by default, or the unit given to tearNextWrite, e.g. 512 for a
 * 512e device) counted from the start of the write.
 */
export type TearPlan = (writeUnitCount: number, offsetBytes: number) => readonly number[];

export class MemoryDisk {
  readonly bytes: Uint8Array;
  private generation = 0;
  private tearPlan: TearPlan | undefined;
  private tearUnitBytes = BLOCK_BYTES;
  private crashAfterLandingNextWrite = false;
  /** Number of writes that reached this disk (landed, torn or not). */
  writeCount = 0;

  constructor(sizeBytes: number) {
    assert(sizeBytes % BLOCK_BYTES === 0, 'memory disk size must be whole blocks');
    this.bytes = new Uint8Array(sizeBytes);
  }

  open(): MemoryRegion {
    return new MemoryRegion(this, this.generation);
  }

  /** Every open handle dies now; what landed stays. */
  crash(): void {
    this.generation += 1;
    this.tearPlan = undefined;
    this.crashAfterLandingNextWrite = false;
  }

  /** The next write lands only the units `plan` returns, then the disk crashes. */
  tearNextWrite(plan: TearPlan, unitBytes: number = BLOCK_BYTES): void {
    assert(unitBytes > 0 && BLOCK_BYTES % unitBytes === 0, () => `tear unit ${unitBytes} must divide ${BLOCK_BYTES}`);
    this.tearPlan = plan;
    this.tearUnitBytes = unitBytes;
  }

  /** The next write lands completely, then the disk crashes before the writer learns it. */
  crashAfterNextWrite(): void {
    this.crashAfterLandingNextWrite = true;
  }

  isLive(generation: number): boolean {
    return generation === this.generation;
  }

  /** Called by MemoryRegion.write; returns false when the handle died with this write. */
  applyWrite(offsetBytes: number, data: Uint8Array): boolean {
    this.writeCount += 1;
    const plan = this.tearPlan;
    if (plan !== undefined) {
      const unit = this.tearUnitBytes;
      const unitCount = data.length / unit;
      for (const index of plan(unitCount, offsetBytes)) {
        assert(Number.isInteger(index) && index >= 0 && index < unitCount, () => `tear plan unit ${index} outside the write`);
        this.bytes.set(data.subarray(index * unit, (index + 1) * unit), offsetBytes + index * unit);
      }
      this.crash();
      return false;
    }
    this.bytes.set(data, offsetBytes);
    if (this.crashAfterLandingNextWrite) {
      this.crash();
      return false;
    }
    return true;
  }
}

function deadHandleError(): JournalError {
  return new JournalError('IO_ERROR', 'memory region handle died in a simulated crash; reopen the disk', {});
}

export class MemoryRegion implements BlockRegion {
  readonly sizeBytes: number;
  readonly description: string;

  constructor(
    private readonly disk: MemoryDisk,
    private readonly generation: number,
  ) {
    this.sizeBytes = disk.bytes.length;
    this.description = `memory(${disk.bytes.length})`;
  }

  allocateBuffer(lengthBytes: number): Uint8Array {
    return new Uint8Array(lengthBytes);
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    assert(offsetBytes % BLOCK_BYTES === 0 && lengthBytes % BLOCK_BYTES === 0, 'unaligned I/O');
    assert(lengthBytes > 0 && offsetBytes >= 0 && offsetBytes + lengthBytes <= this.sizeBytes, 'I/O outside the region');
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    this.checkRange(offsetBytes, lengthBytes);
    if (!this.disk.isLive(this.generation)) throw deadHandleError();
    return this.disk.bytes.slice(offsetBytes, offsetBytes + lengthBytes);
  }

  async readInto(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.checkRange(offsetBytes, target.length);
    if (!this.disk.isLive(this.generation)) throw deadHandleError();
    target.set(this.disk.bytes.subarray(offsetBytes, offsetBytes + target.length));
  }

  write(offsetBytes: number, data: Uint8Array): Promise<void> {
    this.checkRange(offsetBytes, data.length);
    if (!this.disk.isLive(this.generation)) return Promise.reject(deadHandleError());
    const landed = this.disk.applyWrite(offsetBytes, data.slice());
    // A write that died in a crash fails, so the test can await its appends; the
    // handle is dead, so nothing the writer does next reaches the disk anyway.
    if (!landed) return Promise.reject(deadHandleError());
    // Resolve on a later turn, as real I/O does, so appends issued meanwhile group up.
    return new Promise<void>((resolve) => setImmediate(resolve));
  }

  async close(): Promise<void> {}
}
