// The only way the journal touches storage. A region is a byte range of a device or
// file; the journal reads and writes whole, aligned blocks of it. Two
// implementations: fileRegion.ts (O_DIRECT|O_DSYNC on a real device or file) and
// memoryRegion.ts (in memory, with crashes and torn writes for tests).

export interface BlockRegion {
  /** Length of the region in bytes (a multiple of BLOCK_BYTES). */
  readonly sizeBytes: number;
  /** Human-readable location, for error messages ("/dev/loop3 @ 1048576+16777216"). */
  readonly description: string;
  /** A zeroed buffer suitable for write(): aligned to BLOCK_BYTES for direct I/O. */
  allocateBuffer(lengthBytes: number): Uint8Array;
  /**
   * Reads bytes that another process or machine may have written: never served
   * from a cache that could be stale. Offsets and lengths are multiples of BLOCK_BYTES.
   */
  read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array>;
  /**
   * As read(), into `target` (target.length bytes at offsetBytes): a buffer from
   * allocateBuffer(), or a view of one that starts at its first byte. Lets a reader reuse
   * its buffers; a region without it is read with read(), one new buffer per call.
   */
  readInto?(offsetBytes: number, target: Uint8Array): Promise<void>;
  /** Resolves only once the bytes are durable. `data` comes from allocateBuffer(). */
  write(offsetBytes: number, data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export type JournalLogLevel = 'info' | 'warn' | 'error';

/** Injected logger; the journal never writes to stdout or stderr on its own. */
export type JournalLogger = (level: JournalLogLevel, message: string, data?: Record<string, unknown>) => void;

export const silentLogger: JournalLogger = () => {};
