// Types for @ronomon/direct-io, which ships none. Only what thinlv uses.
declare module '@ronomon/direct-io' {
  /** open(2) flag values for this platform (0 where unsupported). */
  export const O_DIRECT: number;
  export const O_DSYNC: number;
  export const O_EXCL: number;
  export const O_SYNC: number;
  /** A Buffer whose memory is aligned to `alignment` bytes, as O_DIRECT requires. */
  export function getAlignedBuffer(size: number, alignment: number): Buffer;
  /** flock(LOCK_EX | LOCK_NB) when value is 1, flock(LOCK_UN) when 0. */
  export function setFlock(fd: number, value: 0 | 1, callback: (error?: NodeJS.ErrnoException | null) => void): void;
  /** Geometry of a block device. */
  export function getBlockDevice(
    fd: number,
    callback: (
      error: NodeJS.ErrnoException | null | undefined,
      device: { logicalSectorSize: number; physicalSectorSize: number; size: number; serialNumber?: string },
    ) => void,
  ): void;
  const directIo: {
    O_DIRECT: number;
    O_DSYNC: number;
    O_EXCL: number;
    O_SYNC: number;
    getAlignedBuffer: typeof getAlignedBuffer;
    setFlock: typeof setFlock;
    getBlockDevice: typeof getBlockDevice;
  };
  export default directIo;
}
