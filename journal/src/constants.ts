// Every bound of the journal, in one place. FORMAT.md explains the on-disk ones;
// the tests in journal/test/ringLimits.test.ts exercise each bound.

/** Unit of alignment and of allocation on disk. 4096 covers 512e and 4Kn SAN LUNs alike. */
export const BLOCK_BYTES = 4096;

/** On-disk format version written in the ring header. Readers refuse any other. */
export const FORMAT_VERSION = 1;

/** Record layout version written in each record header. */
export const RECORD_VERSION = 1;

/** Block 0 holds the ring header, block 1 the consumer block; records start at block 2. */
export const HEADER_BLOCK_OFFSET_BYTES = 0;
export const CONSUMER_BLOCK_OFFSET_BYTES = BLOCK_BYTES;
export const DATA_OFFSET_BYTES = 2 * BLOCK_BYTES;

/** Size of the fixed record header that precedes each payload. */
export const RECORD_HEADER_BYTES = 64;

/**
 * Largest record on disk, header and padding included. It is also the wrap rule:
 * a record starts only where this many bytes remain before the end of the ring.
 */
export const MAX_RECORD_BYTES = 16 * BLOCK_BYTES;

/** Largest payload one record carries. */
export const MAX_PAYLOAD_BYTES = MAX_RECORD_BYTES - RECORD_HEADER_BYTES;

/** Most records one group-commit write carries. */
export const MAX_RECORDS_PER_GROUP_COMMIT = 256;

/** Largest single group-commit write; also the span zeroed past the tail at writer open. */
export const MAX_GROUP_COMMIT_BYTES = 1024 * 1024;

/** Smallest ring (whole region: header, consumer block and data area); holds a maximal record with room to spare. */
export const MIN_RING_BYTES = 256 * 1024;
if (MIN_RING_BYTES < DATA_OFFSET_BYTES + MAX_RECORD_BYTES || MAX_GROUP_COMMIT_BYTES < MAX_RECORD_BYTES) {
  throw new Error('journal constants are inconsistent');
}

/** Largest ring. Opening scans the whole data area once, so this also bounds open time. */
export const MAX_RING_BYTES = 1024 * 1024 * 1024;

/** Ring identities are short ASCII names such as "thinlv_hostA_journal". */
export const MAX_RING_ID_BYTES = 64;
export const RING_ID_PATTERN = /^[A-Za-z0-9._:-]+$/;

/** Appends waiting for a write beyond this are refused with APPEND_QUEUE_FULL. */
export const MAX_QUEUED_APPENDS = 4096;

/** Longest wait a caller may ask for when the ring is full. */
export const MAX_FULL_WAIT_MS = 60_000;

/** How often a writer waiting on a full ring re-reads the consumer block. */
export const FULL_POLL_INTERVAL_MS = 5;

/** Most records one read() returns. */
export const MAX_RECORDS_PER_READ = 4096;

/** How much a reader or the open-time survey reads per I/O. */
export const READ_CHUNK_BYTES = 256 * 1024;

/**
 * Chunks the open-time survey reads ahead of the one it scans, so that the device works
 * while the survey decodes (a writer's open reads the whole ring: 16 MiB at host
 * start-up). Bounds the survey's memory to (1 + this) chunks.
 */
export const SURVEY_READS_AHEAD = 3;
