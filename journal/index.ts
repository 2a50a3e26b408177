// thinlv journal: a crash-safe, self-validating ring on a shared block device.
// Self-contained: nothing here imports from src/. FORMAT.md describes the bytes.

export * from './src/constants.js';
export { JournalError, RingFullError, RingIdentityError, isJournalError, type JournalErrorCode } from './src/errors.js';
export { crc32c, crc32cUpdate } from './src/crc32c.js';
export type { BlockRegion, JournalLogger, JournalLogLevel } from './src/blockRegion.js';
export { silentLogger } from './src/blockRegion.js';
export { FileRegion, openFileRegion, type FileRegionOptions, type FileRegionMode } from './src/fileRegion.js';
export { MemoryDisk, MemoryRegion, type TearPlan } from './src/memoryRegion.js';
export { createRing, type CreateRingOptions } from './src/createRing.js';
export type { RingHeader, ConsumerState } from './src/layout.js';
export { RingWriter, openRingWriter, type RingWriterOptions, type AppendResult, type OnFull } from './src/ringWriter.js';
export { RingReader, openRingReader, type RingReaderOptions, type ReadOptions, type ReadResult, type RingRecord } from './src/ringReader.js';
export type { ChainStopReason } from './src/ringChain.js';
