// Host ownership and liveness: at most one daemon writes a host's journal (I8).
// A delta lease on the shared LUN (across machines) plus a local flock (on one
// machine). Callers use only this interface, so a sanlock lockspace can replace it.

export {
  DEFAULT_LEASE_RENEW_MS,
  MIN_LEASE_RENEW_MS,
  MAX_LEASE_RENEW_MS,
  MAX_INLINE_VERIFY_ATTEMPTS,
  acquireLease,
  leaseTiming,
  probeLease,
  type HeldLease,
  type LeaseEffects,
  type LeaseIdentity,
  type LeaseLogger,
  type LeaseLogLevel,
  type LeaseProbe,
  type LeaseProbeState,
  type LeaseTiming,
} from './hostLease.js';
export {
  LEASE_BLOCK_BYTES,
  LEASE_FORMAT_VERSION,
  LEASE_MAGIC,
  LEASE_MEANINGFUL_BYTES,
  MAX_LEASE_HOLDER_BYTES,
  MAX_LEASE_ID_BYTES,
  decodeLeaseBlock,
  encodeLeaseBlock,
  holderProblem,
  leaseIdProblem,
  type DecodedLeaseBlock,
  type LeaseBlock,
  type LeaseState,
} from './leaseBlock.js';
export { DEFAULT_LOCAL_LOCK_DIR, acquireLocalHostLock, localHostLockPath, type HeldLock } from './localHostLock.js';
