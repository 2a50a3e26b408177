// An independent checker of thinlv's on-disk invariants, written from
// journal/FORMAT.md and src/records/RECORDS.md alone: it imports nothing from src/
// or journal/. It reads the VG's metadata with vgcfgbackup and its own parser, reads
// each host's journal ring from the PV with its own decoder, and checks
//
//   I1  no physical extent in two LVs, in metadata, and in metadata plus unreplayed records
//   I2  every extent in exactly one of: VG free, a host pool (free LV less unreplayed
//       allocations and returns), an LV (segments plus unreplayed allocations)
//   I5  each host's unreplayed records start right after its applied seq
//   I3  each acknowledged extend (given by the caller) is present exactly once
//   I4  no grant record carries a generation the metadata has not committed (the master
//       commits a pool and its generation first, then writes the grant)
//
// It answers a structured report; callers decide what to do with it.

import { decodeJournalPayload, grantGenerationOf, type Range } from './payloads.js';
import { readRingChain, RingFormatError, type StopReason } from './ringDecode.js';
import { readVgSnapshot, SECTOR_BYTES, tagNumber, type SnapshotLv, type VgSnapshot } from './vgSnapshot.js';

export type Invariant = 'I1' | 'I2' | 'I3' | 'I4' | 'I5' | 'FORMAT';

export interface Finding {
  readonly invariant: Invariant;
  readonly severity: 'error' | 'warning';
  readonly code: string;
  readonly message: string;
  readonly data?: Record<string, unknown>;
}

/** An extend `thinlv lvextend` acknowledged (exit 0): the LV is at least `sizeBytes`. */
export interface AcknowledgedExtend {
  readonly lv: string;
  /** When known: an LV of the same name with another uuid is a different LV. */
  readonly lvUuid?: string;
  readonly sizeBytes: number;
  /** When known, the physical ranges the extend added; each must be in the LV exactly once. */
  readonly ranges?: readonly Range[];
}

export interface CheckOptions {
  readonly vgName: string;
  readonly devices: readonly string[];
  readonly acknowledged?: readonly AcknowledgedExtend[];
  /** LVs (by name) the caller removed on purpose: their acknowledged extends are gone with them. */
  readonly removedLvs?: ReadonlySet<string>;
  /** Metadata read again after the rings; a seqno change retries, at most this many times. */
  readonly maxAttempts?: number;
}

export interface HostReport {
  readonly host: string;
  readonly appliedSeq: number;
  readonly consumedSeq: number | undefined;
  readonly chainLastSeq: number | undefined;
  readonly stopReason: StopReason | undefined;
  readonly unreplayedRecordCount: number;
  readonly unreplayedAllocatedExtents: number;
  readonly unreplayedReturnedExtents: number;
  readonly freeLvExtents: number;
  readonly poolExtents: number;
  /** thinlv_grant_gen on the grants LV, and the highest generation among unconsumed grant records. */
  readonly grantGeneration: number;
  readonly unconsumedGrantGeneration: number | undefined;
}

export interface IndependentReport {
  readonly vg: string;
  readonly seqno: number;
  readonly ok: boolean;
  readonly findings: readonly Finding[];
  readonly extentCount: number;
  readonly freeExtentCount: number;
  readonly poolExtentCount: number;
  readonly lvExtentCount: number;
  readonly hosts: readonly HostReport[];
  readonly acknowledgedChecked: number;
  readonly attempts: number;
}

const HOST_LV = /^thinlv_([A-Za-z0-9][A-Za-z0-9.-]{0,62})_(free|journal|grants)$/;
const LEASE_BYTES = 4096;
const FREE = -1;
/** Findings of one kind beyond this many are counted, not listed. */
const MAX_FINDINGS_PER_CODE = 20;

class Findings {
  readonly list: Finding[] = [];
  private readonly counts = new Map<string, number>();
  add(finding: Finding): void {
    const n = (this.counts.get(finding.code) ?? 0) + 1;
    this.counts.set(finding.code, n);
    if (n <= MAX_FINDINGS_PER_CODE) this.list.push(finding);
    else if (n === MAX_FINDINGS_PER_CODE + 1) this.list.push({ ...finding, message: `more ${finding.code} findings not listed` });
  }
}

/** Which LV (index into lvs) holds each physical extent of each PV; FREE when none. */
class ExtentOwners {
  private readonly byPv = new Map<string, Int32Array>();
  constructor(snapshot: VgSnapshot) {
    for (const pv of snapshot.pvs) this.byPv.set(pv.uuid, new Int32Array(pv.peCount).fill(FREE));
  }
  has(pvUuid: string, extent: number): boolean {
    const owners = this.byPv.get(pvUuid);
    return owners !== undefined && extent >= 0 && extent < owners.length;
  }
  get(pvUuid: string, extent: number): number {
    return this.byPv.get(pvUuid)![extent]!;
  }
  set(pvUuid: string, extent: number, owner: number): void {
    this.byPv.get(pvUuid)![extent] = owner;
  }
  *all(): Generator<number> {
    for (const owners of this.byPv.values()) yield* owners;
  }
}

interface HostLvs {
  free?: number;
  journal?: number;
  grants?: number;
}

export async function checkIndependently(options: CheckOptions): Promise<IndependentReport> {
  const maxAttempts = options.maxAttempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    const before = await readVgSnapshot(options.vgName, options.devices);
    const chains = readChains(before);
    const after = await readVgSnapshot(options.vgName, options.devices);
    // The master may have committed and consumed between the two reads: then the rings
    // and the metadata are from different moments, and the check is repeated.
    if (after.seqno === before.seqno || attempt >= maxAttempts) {
      const report = evaluate(before, chains, options, attempt);
      if (after.seqno !== before.seqno) {
        return { ...report, ok: false, findings: [...report.findings, { invariant: 'FORMAT', severity: 'error', code: 'NO_STABLE_SNAPSHOT', message: `metadata seqno moved during each of ${attempt} attempts` }] };
      }
      return report;
    }
  }
}

type ChainResult = { ok: true; read: ReturnType<typeof readRingChain> } | { ok: false; code: string; message: string };

function hostsOf(snapshot: VgSnapshot): Map<string, HostLvs> {
  const hosts = new Map<string, HostLvs>();
  snapshot.lvs.forEach((lv, index) => {
    const match = HOST_LV.exec(lv.name);
    if (!match) return;
    const entry = hosts.get(match[1]!) ?? {};
    entry[match[2] as keyof HostLvs] = index;
    hosts.set(match[1]!, entry);
  });
  return hosts;
}

/** Reads every host's journal ring: the LV's single linear segment, less the lease block. */
function readChains(snapshot: VgSnapshot): Map<string, ChainResult> {
  const result = new Map<string, ChainResult>();
  for (const [host, lvs] of hostsOf(snapshot)) {
    if (lvs.journal !== undefined) result.set(host, readRingOf(snapshot, lvs.journal, LEASE_BYTES));
    if (lvs.grants !== undefined) result.set(`${host}/grants`, readRingOf(snapshot, lvs.grants, 0));
  }
  return result;
}

/** The ring on LV `index`: its single linear segment, less `tailBytes` (the journal's lease block). */
function readRingOf(snapshot: VgSnapshot, index: number, tailBytes: number): ChainResult {
  const extentBytes = snapshot.extentSizeSectors * SECTOR_BYTES;
  const lv = snapshot.lvs[index]!;
  const segment = lv.segments[0];
  const pv = snapshot.pvs.find((p) => p.uuid === segment?.pvUuid);
  if (lv.segments.length !== 1 || segment === undefined || pv === undefined) {
    return { ok: false, code: 'RING_LV_NOT_LINEAR', message: `${lv.name} is not one linear segment` };
  }
  const offsetBytes = pv.peStartSectors * SECTOR_BYTES + segment.firstExtent * extentBytes;
  const lengthBytes = segment.extentCount * extentBytes - tailBytes;
  try {
    return { ok: true, read: readRingChain(pv.device, offsetBytes, lengthBytes, lv.uuid) };
  } catch (error) {
    if (!(error instanceof RingFormatError)) throw error;
    return { ok: false, code: error.code, message: `${lv.name}: ${error.message}` };
  }
}

function evaluate(snapshot: VgSnapshot, chains: Map<string, ChainResult>, options: CheckOptions, attempts: number): IndependentReport {
  const findings = new Findings();
  const owners = new ExtentOwners(snapshot);
  const lvs = snapshot.lvs;
  const extentBytes = snapshot.extentSizeSectors * SECTOR_BYTES;

  // I1 in metadata: each extent of each segment belongs to one LV only.
  lvs.forEach((lv, index) => {
    for (const segment of lv.segments) {
      if (segment.pvUuid === undefined) {
        findings.add({ invariant: 'FORMAT', severity: 'warning', code: 'SEGMENT_NOT_LINEAR', message: `${lv.name}: a ${segment.type} segment is not checked` });
        continue;
      }
      for (let extent = segment.firstExtent; extent < segment.firstExtent + segment.extentCount; extent++) {
        if (!owners.has(segment.pvUuid, extent)) {
          findings.add({ invariant: 'I2', severity: 'error', code: 'EXTENT_OUTSIDE_PV', message: `${lv.name} maps extent ${extent} of PV ${segment.pvUuid}, which the PV does not have`, data: { lv: lv.name, extent } });
          continue;
        }
        const other = owners.get(segment.pvUuid, extent);
        if (other !== FREE) {
          findings.add({ invariant: 'I1', severity: 'error', code: 'EXTENT_IN_TWO_LVS', message: `extent ${extent} of PV ${segment.pvUuid} is in ${lvs[other]!.name} and in ${lv.name} (metadata)`, data: { pvUuid: segment.pvUuid, extent, lvs: [lvs[other]!.name, lv.name] } });
          continue;
        }
        owners.set(segment.pvUuid, extent, index);
      }
    }
  });

  const hosts = hostsOf(snapshot);
  const freeLvIndexes = new Set<number>();
  for (const [host, entry] of hosts) {
    if (entry.free !== undefined) freeLvIndexes.add(entry.free);
    if (entry.journal === undefined || entry.grants === undefined) {
      // A pool with no host to use it: its extents are in none of the three places.
      if (entry.free !== undefined) findings.add({ invariant: 'I2', severity: 'error', code: 'ORPHAN_POOL', message: `${lvs[entry.free]!.name} has no journal or grants LV: its ${lvs[entry.free]!.extentCount} extents are in no host's pool`, data: { host } });
      else findings.add({ invariant: 'FORMAT', severity: 'warning', code: 'INCOMPLETE_HOST', message: `host ${host} lacks its journal or grants LV` });
    }
  }

  // Sizes of LVs as metadata plus unreplayed allocations say (by LV index).
  const sizes = lvs.map((lv) => lv.extentCount);
  const hostReports: HostReport[] = [];
  for (const [host, entry] of hosts) {
    if (entry.journal === undefined || entry.grants === undefined) continue;
    const report = replayHostRecords(snapshot, host, entry, chains.get(host), owners, sizes, findings);
    hostReports.push({ ...report, ...checkGrants(snapshot, host, entry, chains.get(`${host}/grants`), findings) });
  }

  checkThinLvs(snapshot, sizes, extentBytes, findings);
  const acknowledgedChecked = checkAcknowledged(snapshot, options, owners, sizes, extentBytes, findings);

  // I2: every extent in exactly one place (the owner map holds one owner per extent; the
  // findings above cover an extent claimed twice, outside its PV, or in no host's pool).
  let freeExtentCount = 0;
  let poolExtentCount = 0;
  let lvExtentCount = 0;
  for (const owner of owners.all()) {
    if (owner === FREE) freeExtentCount++;
    else if (freeLvIndexes.has(owner)) poolExtentCount++;
    else lvExtentCount++;
  }
  const extentCount = snapshot.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
  if (freeExtentCount + poolExtentCount + lvExtentCount !== extentCount) {
    findings.add({ invariant: 'I2', severity: 'error', code: 'EXTENT_COUNT_MISMATCH', message: `free ${freeExtentCount} + pools ${poolExtentCount} + LVs ${lvExtentCount} != ${extentCount}` });
  }
  return {
    vg: snapshot.name,
    seqno: snapshot.seqno,
    ok: !findings.list.some((f) => f.severity === 'error'),
    findings: findings.list,
    extentCount,
    freeExtentCount,
    poolExtentCount,
    lvExtentCount,
    hosts: hostReports,
    acknowledgedChecked,
    attempts,
  };
}

/**
 * Applies one host's unreplayed records to the owner map as replay would (RECORDS.md):
 * an allocation moves its extents from the host's free LV to the LV when the LV exists
 * with the record's uuid, else back to VG free space; a return frees them.
 */
function replayHostRecords(snapshot: VgSnapshot, host: string, entry: HostLvs, chain: ChainResult | undefined, owners: ExtentOwners, sizes: number[], findings: Findings): Omit<HostReport, 'grantGeneration' | 'unconsumedGrantGeneration'> {
  const journal = snapshot.lvs[entry.journal!]!;
  const appliedSeq = tagNumber(journal.tags, 'thinlv_applied_seq') ?? 0;
  const freeIndex = entry.free;
  const freeLvExtents = freeIndex === undefined ? 0 : snapshot.lvs[freeIndex]!.extentCount;
  const base = { host, appliedSeq, freeLvExtents };
  if (chain === undefined || !chain.ok) {
    findings.add({ invariant: 'FORMAT', severity: 'error', code: 'JOURNAL_UNREADABLE', message: `host ${host}: ${chain?.ok === false ? `${chain.code} ${chain.message}` : 'no ring'}`, data: { host } });
    return { ...base, consumedSeq: undefined, chainLastSeq: undefined, stopReason: undefined, unreplayedRecordCount: 0, unreplayedAllocatedExtents: 0, unreplayedReturnedExtents: 0, poolExtents: freeLvExtents };
  }
  const { ring, records, stopReason } = chain.read;
  const chainLastSeq = records.at(-1)?.seq ?? ring.consumedSeq;
  if (ring.consumedSeq > appliedSeq) {
    findings.add({ invariant: 'I5', severity: 'error', code: 'CONSUMED_NOT_APPLIED', message: `host ${host}: ring consumed through ${ring.consumedSeq} but metadata applied only ${appliedSeq}`, data: { host, consumedSeq: ring.consumedSeq, appliedSeq } });
  }
  if (chainLastSeq < appliedSeq) {
    findings.add({ invariant: 'I5', severity: 'error', code: 'APPLIED_BEYOND_RING', message: `host ${host}: metadata applied through ${appliedSeq} but the ring's chain ends at ${chainLastSeq} (${stopReason})`, data: { host, appliedSeq, chainLastSeq, stopReason } });
  }
  if (stopReason === 'record-version') findings.add({ invariant: 'FORMAT', severity: 'error', code: 'RECORD_VERSION', message: `host ${host}: a record of another version at seq ${chainLastSeq + 1}` });
  const unreplayed = records.filter((r) => r.seq > appliedSeq);
  if (unreplayed.length > 0 && unreplayed[0]!.seq !== appliedSeq + 1) {
    findings.add({ invariant: 'I5', severity: 'error', code: 'UNREPLAYED_GAP', message: `host ${host}: unreplayed records start at ${unreplayed[0]!.seq}, not ${appliedSeq + 1}` });
  }
  let allocated = 0;
  let returned = 0;
  for (const record of unreplayed) {
    const payload = decodeJournalPayload(record.payload);
    if (typeof payload === 'string') {
      findings.add({ invariant: 'FORMAT', severity: 'error', code: 'UNDECODABLE_RECORD', message: `host ${host} seq ${record.seq}: ${payload}` });
      continue;
    }
    if (payload.kind !== 'allocate' && payload.kind !== 'return') continue;
    const targetIndex = payload.kind === 'allocate' ? snapshot.lvs.findIndex((lv) => lv.name === payload.lv && lv.uuid === payload.lvUuid) : -1;
    const extentCount = payload.ranges.reduce((sum, r) => sum + r.extentCount, 0);
    if (!rangesInPool(owners, payload.ranges, freeIndex)) {
      findings.add({ invariant: 'I1', severity: 'error', code: 'UNREPLAYED_OUTSIDE_POOL', message: `host ${host} seq ${record.seq} (${payload.kind}) takes extents its pool does not hold: ${describeOwners(snapshot, owners, payload.ranges, freeIndex)}`, data: { host, seq: record.seq } });
      continue;
    }
    if (targetIndex >= 0 && payload.kind === 'allocate') {
      if (sizes[targetIndex]! + extentCount !== payload.extentCountAfter) {
        findings.add({ invariant: 'I3', severity: 'error', code: 'UNREPLAYED_SIZE_MISMATCH', message: `host ${host} seq ${record.seq}: ${payload.lv} would hold ${sizes[targetIndex]! + extentCount} extents, the record says ${payload.extentCountAfter}` });
      }
      sizes[targetIndex] = sizes[targetIndex]! + extentCount;
      allocated += extentCount;
    } else {
      returned += extentCount;
    }
    for (const range of payload.ranges) {
      for (let e = range.firstExtent; e < range.firstExtent + range.extentCount; e++) owners.set(range.pvUuid, e, targetIndex >= 0 ? targetIndex : FREE);
    }
  }
  return { ...base, consumedSeq: ring.consumedSeq, chainLastSeq, stopReason, unreplayedRecordCount: unreplayed.length, unreplayedAllocatedExtents: allocated, unreplayedReturnedExtents: returned, poolExtents: freeLvExtents - allocated - returned };
}

/** I4: a grant record never carries a generation metadata has not committed. */
function checkGrants(snapshot: VgSnapshot, host: string, entry: HostLvs, chain: ChainResult | undefined, findings: Findings): Pick<HostReport, 'grantGeneration' | 'unconsumedGrantGeneration'> {
  const grantGeneration = tagNumber(snapshot.lvs[entry.grants!]!.tags, 'thinlv_grant_gen') ?? 0;
  if (chain === undefined || !chain.ok) {
    findings.add({ invariant: 'FORMAT', severity: 'error', code: 'GRANTS_UNREADABLE', message: `host ${host}: ${chain?.ok === false ? `${chain.code} ${chain.message}` : 'no grants ring'}`, data: { host } });
    return { grantGeneration, unconsumedGrantGeneration: undefined };
  }
  let highest: number | undefined;
  for (const record of chain.read.records) {
    const generation = grantGenerationOf(record.payload);
    if (typeof generation === 'string') {
      findings.add({ invariant: 'FORMAT', severity: 'error', code: 'UNDECODABLE_GRANT', message: `host ${host} grants seq ${record.seq}: ${generation}` });
      continue;
    }
    if (generation === undefined) continue;
    highest = Math.max(highest ?? 0, generation);
    if (generation > grantGeneration) {
      findings.add({ invariant: 'I4', severity: 'error', code: 'GRANT_AHEAD_OF_METADATA', message: `host ${host}: grant seq ${record.seq} has generation ${generation}, but metadata has committed only ${grantGeneration}`, data: { host, seq: record.seq, generation, grantGeneration } });
    }
  }
  return { grantGeneration, unconsumedGrantGeneration: highest };
}

function rangesInPool(owners: ExtentOwners, ranges: readonly Range[], freeIndex: number | undefined): boolean {
  const seen = new Set<string>();
  for (const range of ranges) {
    for (let e = range.firstExtent; e < range.firstExtent + range.extentCount; e++) {
      const key = `${range.pvUuid}:${e}`;
      if (seen.has(key) || freeIndex === undefined || !owners.has(range.pvUuid, e) || owners.get(range.pvUuid, e) !== freeIndex) return false;
      seen.add(key);
    }
  }
  return true;
}

function describeOwners(snapshot: VgSnapshot, owners: ExtentOwners, ranges: readonly Range[], freeIndex: number | undefined): string {
  const parts: string[] = [];
  for (const range of ranges) {
    for (let e = range.firstExtent; e < range.firstExtent + range.extentCount && parts.length < 5; e++) {
      const owner = owners.has(range.pvUuid, e) ? owners.get(range.pvUuid, e) : undefined;
      if (owner === freeIndex) continue;
      parts.push(`extent ${e} is ${owner === undefined ? 'outside the PV' : owner === FREE ? 'VG free' : `in ${snapshot.lvs[owner]!.name}`}`);
    }
  }
  return parts.join(', ');
}

/** A thin LV never holds more extents than its virtual size (metadata plus unreplayed). */
function checkThinLvs(snapshot: VgSnapshot, sizes: readonly number[], extentBytes: number, findings: Findings): void {
  snapshot.lvs.forEach((lv: SnapshotLv, index) => {
    const virtualBytes = tagNumber(lv.tags, 'thinlv_virtual_bytes');
    if (virtualBytes === undefined) return;
    if (sizes[index]! > Math.ceil(virtualBytes / extentBytes)) {
      findings.add({ invariant: 'I3', severity: 'error', code: 'OVER_VIRTUAL_SIZE', message: `${lv.name} holds ${sizes[index]} extents, past its virtual size ${virtualBytes}` });
    }
  });
}

/** I3 from the caller's list: each acknowledged extend is in the LV (metadata or unreplayed), once. */
function checkAcknowledged(snapshot: VgSnapshot, options: CheckOptions, owners: ExtentOwners, sizes: readonly number[], extentBytes: number, findings: Findings): number {
  let checked = 0;
  for (const ack of options.acknowledged ?? []) {
    const index = snapshot.lvs.findIndex((lv) => lv.name === ack.lv && (ack.lvUuid === undefined || lv.uuid === ack.lvUuid));
    if (index < 0) {
      if (options.removedLvs?.has(ack.lv) !== true) {
        findings.add({ invariant: 'I3', severity: 'error', code: 'ACKNOWLEDGED_LV_MISSING', message: `${ack.lv}, extended to ${ack.sizeBytes} bytes, is gone`, data: { ...ack } });
      }
      continue;
    }
    checked++;
    const sizeBytes = sizes[index]! * extentBytes;
    if (sizeBytes < ack.sizeBytes) {
      findings.add({ invariant: 'I3', severity: 'error', code: 'ACKNOWLEDGED_EXTENT_LOST', message: `${ack.lv} holds ${sizeBytes} bytes (metadata plus unreplayed), but an extend to ${ack.sizeBytes} was acknowledged`, data: { lv: ack.lv, sizeBytes, acknowledgedBytes: ack.sizeBytes } });
    }
    for (const range of ack.ranges ?? []) {
      for (let e = range.firstExtent; e < range.firstExtent + range.extentCount; e++) {
        if (!owners.has(range.pvUuid, e) || owners.get(range.pvUuid, e) !== index) {
          findings.add({ invariant: 'I3', severity: 'error', code: 'ACKNOWLEDGED_EXTENT_LOST', message: `extent ${e} of PV ${range.pvUuid}, acknowledged to ${ack.lv}, is not in it` });
        }
      }
    }
  }
  return checked;
}
