// A region of a block device or a file, read and written with direct I/O:
// O_DIRECT so reads never come from this machine's page cache (the other side of
// the ring writes on another machine), O_DSYNC so a write has reached stable
// storage when it returns. Where the filesystem refuses O_DIRECT (tmpfs), the region
// falls back to O_DSYNC plus fdatasync and logs it: durability holds, but reads may
// be served from this machine's cache, which is only correct when both sides run here.

import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import { BLOCK_BYTES, MAX_RING_BYTES, MIN_RING_BYTES } from './constants.js';
import { assert, JournalError } from './errors.js';
import { silentLogger, type BlockRegion, type JournalLogger } from './blockRegion.js';

interface DirectIo {
  O_DIRECT: number;
  O_DSYNC: number;
  getAlignedBuffer(size: number, alignment: number): Buffer;
}

const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as DirectIo;

export interface FileRegionOptions {
  /** Where the region starts on the device or in the file. Multiple of BLOCK_BYTES. */
  readonly offsetBytes: number;
  /** Region length. Multiple of BLOCK_BYTES, within [MIN_RING_BYTES, MAX_RING_BYTES]. */
  readonly lengthBytes: number;
  readonly logger?: JournalLogger;
  /** How to open the path with given flags; a test replaces it to see the fallback. Defaults to fs.open. */
  readonly openFile?: (path: string, flags: number) => Promise<number>;
}

export type FileRegionMode = 'direct' | 'dsync-fallback';

export class FileRegion implements BlockRegion {
  readonly sizeBytes: number;
  readonly description: string;

  private constructor(
    private readonly fd: number,
    private readonly offsetBytes: number,
    lengthBytes: number,
    readonly mode: FileRegionMode,
    path: string,
  ) {
    this.sizeBytes = lengthBytes;
    this.description = `${path} @ ${offsetBytes}+${lengthBytes}`;
  }

  static async open(path: string, options: FileRegionOptions): Promise<FileRegion> {
    const { offsetBytes, lengthBytes } = options;
    const logger = options.logger ?? silentLogger;
    checkGeometry(path, offsetBytes, lengthBytes);
    const { fd, mode } = await openDirect(path, logger, options.openFile ?? openFd);
    try {
      await checkRegionEnd(fd, path, offsetBytes, lengthBytes);
    } catch (error) {
      fs.closeSync(fd);
      throw error;
    }
    return new FileRegion(fd, offsetBytes, lengthBytes, mode, path);
  }

  allocateBuffer(lengthBytes: number): Uint8Array {
    assert(lengthBytes > 0 && lengthBytes % BLOCK_BYTES === 0, () => `buffer length ${lengthBytes} must be whole blocks`);
    return directIo.getAlignedBuffer(lengthBytes, BLOCK_BYTES);
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    assert(offsetBytes % BLOCK_BYTES === 0 && lengthBytes % BLOCK_BYTES === 0, 'unaligned I/O');
    assert(lengthBytes > 0 && offsetBytes >= 0 && offsetBytes + lengthBytes <= this.sizeBytes, 'I/O outside the region');
  }

  async read(offsetBytes: number, lengthBytes: number): Promise<Uint8Array> {
    this.checkRange(offsetBytes, lengthBytes);
    const buffer = directIo.getAlignedBuffer(lengthBytes, BLOCK_BYTES);
    await this.readInto(offsetBytes, buffer);
    return buffer;
  }

  /**
   * Each buffer of the addon is memory V8 does not know of (it does not report its size),
   * freed only when V8 next collects the object that holds it: a reader that reads many
   * chunks (the survey of a whole ring at a writer's open) reuses a few instead.
   */
  async readInto(offsetBytes: number, target: Uint8Array): Promise<void> {
    const lengthBytes = target.length;
    this.checkRange(offsetBytes, lengthBytes);
    assert(target.byteOffset % BLOCK_BYTES === 0, 'a direct read goes to an aligned buffer');
    let done = 0;
    while (done < lengthBytes) {
      const got = await ioCall<number>((cb) => fs.read(this.fd, target, done, lengthBytes - done, this.offsetBytes + offsetBytes + done, cb), this, 'read', offsetBytes);
      if (got === 0) throw new JournalError('IO_ERROR', `short read at ${offsetBytes} on ${this.description}`, { offsetBytes, lengthBytes });
      done += got;
    }
  }

  write(offsetBytes: number, data: Uint8Array): Promise<void> {
    this.checkRange(offsetBytes, data.length);
    // Plain callbacks and one promise: this is every append's path.
    return new Promise<void>((resolve, reject) => this.writeFrom(offsetBytes, data, 0, resolve, reject));
  }

  private writeFrom(offsetBytes: number, data: Uint8Array, done: number, resolve: () => void, reject: (error: unknown) => void): void {
    fs.write(this.fd, data, done, data.length - done, this.offsetBytes + offsetBytes + done, (error, wrote) => {
      if (error) {
        reject(this.ioError('write', offsetBytes, error));
        return;
      }
      // O_DIRECT writes of whole aligned blocks complete in one call; continuing
      // guards against a short write, which would otherwise be silent data loss.
      if (wrote <= 0 || wrote % BLOCK_BYTES !== 0) {
        reject(new Error(`journal invariant violated: direct write returned ${wrote} bytes`));
        return;
      }
      if (done + wrote < data.length) {
        this.writeFrom(offsetBytes, data, done + wrote, resolve, reject);
      } else if (this.mode === 'dsync-fallback') {
        fs.fdatasync(this.fd, (syncError) => (syncError ? reject(this.ioError('fdatasync', offsetBytes, syncError)) : resolve()));
      } else {
        resolve();
      }
    });
  }

  private ioError(operation: string, offsetBytes: number, error: NodeJS.ErrnoException): JournalError {
    return new JournalError('IO_ERROR', `${operation} at ${offsetBytes} on ${this.description} failed: ${error.code ?? error.message}`, { operation, offsetBytes, errno: error.code }, { cause: error });
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve, reject) => fs.close(this.fd, (error) => (error ? reject(error) : resolve())));
  }
}

function checkGeometry(path: string, offsetBytes: number, lengthBytes: number): void {
  const problems: string[] = [];
  if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes % BLOCK_BYTES !== 0) {
    problems.push(`offset ${offsetBytes} must be a non-negative multiple of ${BLOCK_BYTES}`);
  }
  if (!Number.isSafeInteger(lengthBytes) || lengthBytes % BLOCK_BYTES !== 0 || lengthBytes < MIN_RING_BYTES || lengthBytes > MAX_RING_BYTES) {
    problems.push(`length ${lengthBytes} must be a multiple of ${BLOCK_BYTES} between ${MIN_RING_BYTES} and ${MAX_RING_BYTES}`);
  }
  if (problems.length > 0) {
    throw new JournalError('REGION_INVALID', `invalid region on ${path}: ${problems.join('; ')}`, { path, offsetBytes, lengthBytes });
  }
}

async function openDirect(path: string, logger: JournalLogger, openFile: (path: string, flags: number) => Promise<number>): Promise<{ fd: number; mode: FileRegionMode }> {
  const base = fs.constants.O_RDWR;
  try {
    return { fd: await openFile(path, base | directIo.O_DIRECT | directIo.O_DSYNC), mode: 'direct' };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw regionOpenError(path, error);
  }
  try {
    const fd = await openFile(path, base | directIo.O_DSYNC);
    logger('warn', `O_DIRECT refused on ${path} (EINVAL, e.g. tmpfs); using O_DSYNC plus fdatasync. Reads may come from this machine's page cache, so use this only when writer and reader share this machine.`, { path });
    return { fd, mode: 'dsync-fallback' };
  } catch (error) {
    throw regionOpenError(path, error);
  }
}

function openFd(path: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(path, flags, (error, fd) => (error ? reject(error) : resolve(fd))));
}

function regionOpenError(path: string, cause: unknown): JournalError {
  const code = (cause as NodeJS.ErrnoException).code ?? 'unknown';
  return new JournalError('REGION_INVALID', `cannot open ${path} for direct I/O (${code}); check the path exists and this process may write it`, { path, errno: code }, { cause });
}

/**
 * Reads the region's last block: a short read means the device or file ends before
 * the region does. This works the same on block devices (whose fstat size is 0),
 * files and loop devices, with no ioctl.
 */
async function checkRegionEnd(fd: number, path: string, offsetBytes: number, lengthBytes: number): Promise<void> {
  const buffer = directIo.getAlignedBuffer(BLOCK_BYTES, BLOCK_BYTES);
  const lastBlockOffset = offsetBytes + lengthBytes - BLOCK_BYTES;
  const got = await new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, BLOCK_BYTES, lastBlockOffset, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))));
  if (got !== BLOCK_BYTES) {
    throw new JournalError('REGION_INVALID', `region ${offsetBytes}+${lengthBytes} ends past the end of ${path}; check the ring LV's offset and size`, { path, offsetBytes, lengthBytes });
  }
}

function ioCall<T>(
  start: (callback: (error: NodeJS.ErrnoException | null, result: T) => void) => void,
  region: FileRegion,
  operation: string,
  offsetBytes: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) =>
    start((error, result) => {
      if (error) {
        reject(new JournalError('IO_ERROR', `${operation} at ${offsetBytes} on ${region.description} failed: ${error.code ?? error.message}`, { operation, offsetBytes, errno: error.code }, { cause: error }));
      } else {
        resolve(result);
      }
    }),
  );
}

export function openFileRegion(path: string, options: FileRegionOptions): Promise<FileRegion> {
  return FileRegion.open(path, options);
}
