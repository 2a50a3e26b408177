// An in-memory LVM for exactly the lvm commands thinlv runs (grep "\.run('" src):
// fullreport (read-only), vgcfgbackup and vgcfgrestore. It keeps the VG as the
// metadata text model thinlv itself parses (src/lvm/metadataText.ts) and behaves
// like LVM 2.03 where thinlv depends on it:
//   - vgcfgrestore writes the file's seqno + 1, even when that is lower than the VG's;
//   - it refuses a file whose LVs overlap, use a PV extent twice, fall outside a PV,
//     leave gaps in an LV, or carry an invalid name or tag, and a VG other than this one;
//   - the text must fit half the metadata area (LVM keeps two copies), with LVM's
//     own message when it does not;
//   - fullreport must be read-only (--readonly), as every report thinlv runs;
//   - anything else (another command, other arguments) throws: a new lvm call in
//     src shows up here instead of being silently faked.
// Beside the commands, what a runner may bring (src/lvm/runLvm.ts):
//   - textKey: the text's serial number, bumped at each restore (what the PVs' headers
//     tell a real reader: the text is the one read before), so the master's commit and
//     pass start skip re-reading a text they hold, and hosts skip refreshing it;
//   - local: lvm's VG lock and the files handed to lvm (-f), in memory (simLocal.ts);
//     a backup's file carries the parse of the text LVM holds, frozen, so the master's
//     read of it is not a second parse of a text parsed once already.

import { isDeepStrictEqual } from 'node:util';
import { ExtentSet } from '../../src/extent/extentSet.js';
import { FULLREPORT_ARGS } from '../../src/lvm/readVgReport.js';
import { parseVgMetadata, printVgMetadata } from '../../src/lvm/metadataText.js';
import { classifyLvmFailure, type LvmCallOptions, type LvmResult, type LvmRunner } from '../../src/lvm/runLvm.js';
import { invalidNameReason, invalidTagReason } from '../../src/metadata/names.js';
import { SECTOR_BYTES, type LvMetadata, type VgMetadata } from '../../src/metadata/vgModel.js';
import type { SimKernel, SimProcess } from './simKernel.js';
import { SimLocalFiles } from './simLocal.js';

/** What the simulated lvm will not take (a call it does not know, a text that is not what it claims): the run fails. */
export class UnexpectedLvmCall extends Error {}

/**
 * A commit's file is parsed once in this many restores (the rest take the VG it was
 * printed from): enough to catch a printer and parser that disagree within a short run,
 * at an eighth of the cost of parsing every commit. Files lvm did not get from a commit
 * are always parsed.
 */
const PARSE_EVERY = 8;

export interface SimVgOptions {
  readonly vgName: string;
  readonly device: string;
  readonly extentSizeBytes: number;
  readonly peCount: number;
  readonly peStartBytes: number;
  readonly metadataAreaBytes: number;
}

export function initialVgMetadata(options: SimVgOptions): VgMetadata {
  const sectors = (bytes: number) => bytes / SECTOR_BYTES;
  const str = (value: string) => ({ kind: 'string' as const, value });
  const int = (value: number) => ({ kind: 'int' as const, text: String(value) });
  return {
    header: [
      { kind: 'assign', key: 'contents', value: str('Text Format Volume Group') },
      { kind: 'assign', key: 'version', value: int(1) },
      { kind: 'assign', key: 'description', value: str('sim') },
      { kind: 'assign', key: 'creation_host', value: str('sim') },
      { kind: 'assign', key: 'creation_time', value: int(0) },
    ],
    name: options.vgName,
    uuid: 'SIMVG0-0000-0000-0000-0000-0000-000000',
    seqno: 1,
    status: ['RESIZEABLE', 'READ', 'WRITE'],
    flags: [],
    tags: [],
    extentSizeSectors: sectors(options.extentSizeBytes),
    extra: [
      { kind: 'assign', key: 'max_lv', value: int(0) },
      { kind: 'assign', key: 'max_pv', value: int(0) },
      { kind: 'assign', key: 'metadata_copies', value: int(0) },
    ],
    pvs: [
      {
        key: 'pv0',
        device: options.device,
        uuid: 'SIMPV0-0000-0000-0000-0000-0000-000000',
        status: ['ALLOCATABLE'],
        flags: [],
        tags: [],
        devSizeSectors: sectors(options.peStartBytes + options.peCount * options.extentSizeBytes),
        peStartSectors: sectors(options.peStartBytes),
        peCount: options.peCount,
        extra: [],
      },
    ],
    lvs: [],
  };
}

const segmentRanges = (lv: LvMetadata) => lv.segments.flatMap((s) => s.stripes.map((st) => ({ pv: st.pv, firstExtent: st.firstExtent, extentCount: s.extentCount / s.stripes.length })));

export class SimLvm {
  private vg: VgMetadata;
  /** The VG's text as LVM holds it (what vgcfgbackup writes), and its fullreport output: both change only at a restore. */
  private text: string;
  private textBytes: number;
  /** The largest text LVM held (bytes), for the run's summary. */
  maxTextBytes = 0;
  private reportJson: string | undefined;
  /** Bumped at each restore: what names the text (LvmRunner.textKey). */
  private textSerial = 1;
  /** The lock and the files handed to lvm, on the master's machine (simLocal.ts). */
  readonly local = new SimLocalFiles();
  /** lvm commands run, by command name. */
  readonly calls = new Map<string, number>();
  /** Restores checked (parsed) whose text printed back as the file it was given (no second parse needed). */
  restoresAsGiven = 0;
  /** Restores of a file that said what it was printed from (simLocal.ts). */
  private printedRestores = 0;

  constructor(
    initial: VgMetadata,
    /** Bytes of one metadata area (LVM's mda_size); a copy may use half of it. */
    readonly metadataAreaBytes: number,
  ) {
    this.vg = deepFreeze(initial);
    this.text = printVgMetadata(initial);
    this.textBytes = Buffer.byteLength(this.text);
  }

  /** Told of every commit as it lands, before its writer can crash (the checker follows deliberate cuts). */
  onCommit: ((before: VgMetadata, after: VgMetadata) => Promise<void>) | undefined;

  /** Bytes of the text LVM holds now. */
  get metadataTextBytes(): number {
    return this.textBytes;
  }

  /** The VG as LVM holds it now (for the checker: it reads what LVM holds, not what thinlv thinks). */
  get metadata(): VgMetadata {
    return this.vg;
  }

  /** A runner for one process; hosts get a read-only one (a host never writes metadata). */
  runner(proc: SimProcess, kernel: SimKernel, options: { readOnly: boolean }): LvmRunner {
    return {
      // A real reader reads the PVs' label and header sectors for this: an effect, where it may crash.
      textKey: async (vgName) => {
        await kernel.point(proc, 'lvm.textKey');
        return vgName === this.vg.name ? `${this.vg.uuid} text ${this.textSerial}` : undefined;
      },
      ...(options.readOnly ? {} : { local: this.local.forProcess(proc) }),
      run: async (command, args, callOptions) => {
        await kernel.point(proc, `lvm.${command}`);
        if (options.readOnly && command !== 'fullreport') throw new UnexpectedLvmCall(`host process ${proc} ran "lvm ${command} ${args.join(' ')}": hosts only read metadata`);
        const before = this.vg;
        const result = this.run(command, args, callOptions);
        if (this.vg !== before) await this.onCommit?.(before, this.vg);
        await kernel.point(proc, `lvm.${command}.done`);
        return result;
      },
    };
  }

  run(command: string, args: readonly string[], options: LvmCallOptions = {}): LvmResult {
    this.calls.set(command, (this.calls.get(command) ?? 0) + 1);
    if (options.allowFailure === true) throw new UnexpectedLvmCall(`lvm ${command} with allowFailure: not simulated`);
    switch (command) {
      case 'fullreport':
        return this.fullreport(args);
      case 'vgcfgbackup':
        return this.vgcfgbackup(args);
      case 'vgcfgrestore':
        return this.vgcfgrestore(args);
      default:
        throw new UnexpectedLvmCall(`unexpected lvm call: lvm ${command} ${args.join(' ')}`);
    }
  }

  private fail(command: string, args: readonly string[], stderr: string): never {
    throw classifyLvmFailure(command, args, 5, stderr);
  }

  private vgNameArg(command: string, args: readonly string[]): void {
    const name = args[args.length - 1];
    if (name !== this.vg.name) this.fail(command, args, `  Volume group "${name}" not found\n  Cannot process volume group ${name}\n`);
  }

  private fullreport(args: readonly string[]): LvmResult {
    const expected = [...FULLREPORT_ARGS, '--readonly'];
    if (args.length !== expected.length + 1 || expected.some((a, i) => args[i] !== a)) {
      throw new UnexpectedLvmCall(`unexpected fullreport arguments (a report must be read-only, with FULLREPORT_ARGS): ${args.join(' ')}`);
    }
    this.vgNameArg('fullreport', args);
    // Hosts read far more often than the master commits: one report per metadata version.
    this.reportJson ??= JSON.stringify(this.report());
    return { stdout: this.reportJson, stderr: '', exitCode: 0 };
  }

  private report(): unknown {
    const vg = this.vg;
    const extentBytes = vg.extentSizeSectors * SECTOR_BYTES;
    const pvByDevice = new Map(vg.pvs.map((pv) => [pv.device, pv]));
    const used = ExtentSet.fromRanges(vg.lvs.flatMap(segmentRanges));
    const all = ExtentSet.fromRanges(vg.pvs.map((pv) => ({ pv: pv.device, firstExtent: 0, extentCount: pv.peCount })));
    const free = all.difference(used);
    const extentCount = vg.pvs.reduce((sum, pv) => sum + pv.peCount, 0);
    const capacity = this.metadataAreaBytes / 2;
    const pvseg: Record<string, string>[] = [];
    for (const lv of vg.lvs) {
      for (const r of segmentRanges(lv)) pvseg.push({ pv_uuid: pvByDevice.get(r.pv)!.uuid, pvseg_start: String(r.firstExtent), pvseg_size: String(r.extentCount), lv_uuid: lv.uuid });
    }
    for (const r of free.ranges()) pvseg.push({ pv_uuid: pvByDevice.get(r.pv)!.uuid, pvseg_start: String(r.firstExtent), pvseg_size: String(r.extentCount), lv_uuid: '' });
    pvseg.sort((a, b) => (a.pv_uuid === b.pv_uuid ? Number(a.pvseg_start) - Number(b.pvseg_start) : a.pv_uuid! < b.pv_uuid! ? -1 : 1));
    return {
      report: [
        {
          vg: [
            {
              vg_name: vg.name,
              vg_uuid: vg.uuid,
              vg_seqno: String(vg.seqno),
              vg_extent_size: String(extentBytes),
              vg_extent_count: String(extentCount),
              vg_free_count: String(free.extentCount),
              vg_mda_size: String(this.metadataAreaBytes),
              vg_mda_free: String(Math.max(0, capacity - this.textBytes)),
              vg_tags: vg.tags.join(','),
            },
          ],
          pv: vg.pvs.map((pv) => ({
            pv_name: pv.device,
            pv_uuid: pv.uuid,
            pe_start: String(pv.peStartSectors * SECTOR_BYTES),
            pv_pe_count: String(pv.peCount),
            dev_size: String(pv.devSizeSectors * SECTOR_BYTES),
          })),
          lv: vg.lvs.map((lv) => ({ lv_name: lv.name, lv_uuid: lv.uuid, lv_tags: lv.tags.join(','), lv_skip_activation: lv.activationSkip ? 'skip activation' : '' })),
          seg: vg.lvs.flatMap((lv) =>
            lv.segments.map((s) => ({
              lv_uuid: lv.uuid,
              seg_start_pe: String(s.logicalStart),
              seg_size_pe: String(s.extentCount),
              segtype: s.type === 'striped' && s.stripes.length === 1 ? 'linear' : s.type,
              seg_pe_ranges: s.stripes.map((st) => `${st.pv}:${st.firstExtent}-${st.firstExtent + s.extentCount / s.stripes.length - 1}`).join(' '),
            })),
          ),
          pvseg,
        },
      ],
    };
  }

  private fileArg(command: string, args: readonly string[], allowed: readonly string[][]): string {
    if (!allowed.some((shape) => shape.length === args.length && shape.every((a, i) => a === '*' || a === args[i]))) {
      throw new UnexpectedLvmCall(`unexpected ${command} arguments: ${args.join(' ')}`);
    }
    this.vgNameArg(command, args);
    return args[args.indexOf('-f') + 1]!;
  }

  private vgcfgbackup(args: readonly string[]): LvmResult {
    const file = this.fileArg('vgcfgbackup', args, [['--nolocking', '-f', '*', '*'], ['-f', '*', '*']]);
    this.local.writeFile(file, this.text, this.vg);
    return { stdout: `  Volume group "${this.vg.name}" successfully backed up.\n`, stderr: '', exitCode: 0 };
  }

  private vgcfgrestore(args: readonly string[]): LvmResult {
    const file = this.fileArg('vgcfgrestore', args, [['--nolocking', '--yes', '-f', '*', '*']]);
    let text: string;
    try {
      text = this.local.readFile(file);
    } catch (error) {
      this.fail('vgcfgrestore', args, `  Couldn't read volume group metadata from file ${file}: ${(error as Error).message}\n  Restore failed.\n`);
    }
    // A commit's file says what it was printed from: parsing it would give that back, which
    // every PARSE_EVERY-th such restore (and every other file) checks, as LVM parses it.
    const given = this.local.printedFrom(file);
    const checked = given === undefined || ++this.printedRestores % PARSE_EVERY === 0;
    const parsed = checked ? this.parseFile(args, file, text, given) : given;
    const problem = this.validate(parsed);
    if (problem !== undefined) this.fail('vgcfgrestore', args, `  ${problem}\n  Restore failed.\n`);
    const next: VgMetadata = { ...parsed, seqno: parsed.seqno + 1 };
    const nextText = checked ? printVgMetadata(next) : withSeqno(text, parsed.seqno, next.seqno);
    const bytes = Buffer.byteLength(nextText);
    if (bytes > this.metadataAreaBytes / 2) {
      this.fail('vgcfgrestore', args, `  VG ${next.name} ${next.seqno} metadata on ${next.pvs[0]!.device} (${bytes} bytes) too large for circular buffer (${this.metadataAreaBytes / 2} bytes with ${this.textBytes} used)\n  Failed to write VG ${next.name}.\n  Restore failed.\n`);
    }
    // What LVM holds is what it reads back from the text it wrote, so a text that does not
    // print back as it parsed shows. When that text is the file's but for the seqno line,
    // its parse is the file's parse with the new seqno (`next`), and parsing it again would
    // only repeat the first parse.
    const asGiven = !checked || withSeqno(text, parsed.seqno, next.seqno) === nextText;
    if (checked && asGiven) this.restoresAsGiven += 1;
    // Frozen: readers may be handed it (simLocal.ts's readVgFile), and must not change it.
    this.vg = deepFreeze(asGiven ? next : parseVgMetadata(nextText));
    this.text = nextText;
    this.textBytes = bytes;
    this.maxTextBytes = Math.max(this.maxTextBytes, bytes);
    this.textSerial += 1;
    this.reportJson = undefined;
    return { stdout: `  Restored volume group ${next.name}.\n`, stderr: '', exitCode: 0 };
  }

  /** The restored file's text parsed, as LVM reads it; it must be the VG it was printed from, when its writer said. */
  private parseFile(args: readonly string[], file: string, text: string, printedFrom: VgMetadata | undefined): VgMetadata {
    let parsed: VgMetadata;
    try {
      parsed = parseVgMetadata(text);
    } catch (error) {
      this.fail('vgcfgrestore', args, `  Couldn't read volume group metadata from file ${file}: ${(error as Error).message}\n  Restore failed.\n`);
    }
    if (printedFrom !== undefined && !isDeepStrictEqual(parsed, printedFrom)) {
      throw new UnexpectedLvmCall(`vgcfgrestore ${file}: the text a commit printed does not parse back to the VG it was printed from (metadataText.ts)`);
    }
    return parsed;
  }

  /** What LVM's vg_validate would refuse in a restored file, or undefined. */
  private validate(next: VgMetadata): string | undefined {
    const vg = this.vg;
    if (next.name !== vg.name || next.uuid !== vg.uuid) return `Volume group ${next.name} (${next.uuid}) in the file is not ${vg.name}`;
    if (next.extentSizeSectors !== vg.extentSizeSectors) return `Extent size of ${next.name} differs from the VG's`;
    if (JSON.stringify(next.pvs.map((p) => [p.key, p.uuid, p.device, p.peCount, p.peStartSectors])) !== JSON.stringify(vg.pvs.map((p) => [p.key, p.uuid, p.device, p.peCount, p.peStartSectors]))) {
      return `Physical volumes in the file do not match the VG's`;
    }
    for (const tag of next.tags) if (invalidTagReason(tag)) return `Invalid tag ${tag} on VG ${next.name}`;
    const names = new Set<string>();
    const uuids = new Set<string>();
    const pvs = new Map(next.pvs.map((pv) => [pv.device, pv]));
    // Which LV (index + 1) holds each PE of each PV; 0 is free.
    const owner = new Map(next.pvs.map((pv) => [pv.device, new Int32Array(pv.peCount)]));
    for (const [lvIndex, lv] of next.lvs.entries()) {
      if (invalidNameReason(lv.name, 'LV')) return `Logical volume name "${lv.name}" is invalid`;
      if (names.has(lv.name)) return `Duplicate LV name ${lv.name} detected`;
      if (uuids.has(lv.uuid)) return `Duplicate LV id ${lv.uuid} detected for ${lv.name}`;
      names.add(lv.name);
      uuids.add(lv.uuid);
      for (const tag of lv.tags) if (invalidTagReason(tag)) return `Invalid tag ${tag} on LV ${lv.name}`;
      if (lv.segments.length === 0) return `LV ${lv.name} has no segments`;
      let logical = 0;
      for (const segment of lv.segments) {
        if (segment.type !== 'striped') throw new UnexpectedLvmCall(`vgcfgrestore of a ${segment.type} segment (LV ${lv.name}): not simulated`);
        if (segment.logicalStart !== logical) return `LV ${lv.name} segment at ${segment.logicalStart} does not follow the previous one (expected ${logical}): LV segments corrupted`;
        logical += segment.extentCount;
      }
      for (const range of segmentRanges(lv)) {
        const pv = pvs.get(range.pv);
        if (pv === undefined || range.firstExtent + range.extentCount > pv.peCount) return `LV ${lv.name} extends past the end of PV ${range.pv}: PV segments corrupted`;
        const owners = owner.get(range.pv)!;
        for (let pe = range.firstExtent; pe < range.firstExtent + range.extentCount; pe++) {
          const other = owners[pe]!;
          if (other !== 0) return `PV segment ${range.pv}:${pe} is allocated to both ${next.lvs[other - 1]!.name} and ${lv.name}: PV segments corrupted`;
          owners[pe] = lvIndex + 1;
        }
      }
    }
    return undefined;
  }
}

/**
 * `text` with the VG's seqno line (the first "seqno" one tab in: printVgMetadata puts it
 * right after the VG's id) saying `to` instead of `from`; `text` itself when there is none.
 * Replacing another line could only make the result differ from the printed text, never
 * match it by mistake: that one has `to` on the VG's own line.
 */
function withSeqno(text: string, from: number, to: number): string {
  const line = `\n\tseqno = ${from}\n`;
  const at = text.indexOf(line);
  return at < 0 ? text : `${text.slice(0, at)}\n\tseqno = ${to}\n${text.slice(at + line.length)}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const child of Object.values(value)) deepFreeze(child);
  return Object.freeze(value);
}
