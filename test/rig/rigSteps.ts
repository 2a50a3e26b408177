// What the rig's scenario runs share: a log of steps and checks, polling a guest until a
// state is reached, a thinlv VG set up on the shared LUN, the master and host daemons
// started and stopped in guests, and dm tables read live or computed from metadata.
//
// Tables "from metadata" are computed from `lvm lvs --segments` and the PV's pe_start,
// independently of thinlv's code: what stock LVM would map (adjacent segments that
// continue each other coalesced, as thinlv's tables are).

import type { RigGuest } from './rigHarness.js';
import type { RigStepResult } from './rigSmoke.js';

export const VG = 'rigvg';
export const SECTOR_BYTES = 512;
export const MIB = 1024 ** 2;
/** Where the tools image holds thinlv's compiled tests (scripts/rig/build.sh). */
export const GUEST_DIST = '/tools/thinlv/dist';
/** Node in a TCG guest is slow: a thinlv command takes seconds. */
export const COMMAND_TIMEOUT_MS = 180_000;
const POLL_PAUSE_MS = 1_000;
/** The master's pid is in its lock file (src/cli/commands/master.ts). */
const MASTER_LOCK = `/run/lock/thinlv/master-${VG}.lock`;

export interface TableLine {
  readonly startSector: number;
  readonly lengthSectors: number;
  readonly device: string;
  readonly offsetSector: number;
}

/** The lines and failures of one run; every check goes through expect(), so none is silent. */
export class RunLog {
  readonly lines: string[] = [];
  readonly failures: string[] = [];

  async step(guest: RigGuest, what: string, command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
    const started = Date.now();
    const result = await guest.run(command, { timeoutMs });
    this.lines.push(`${guest.name}: ${what} (${Date.now() - started} ms)`);
    return result.stdout;
  }

  expect(ok: boolean, what: string, detail = ''): boolean {
    this.lines.push(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
    if (!ok) this.failures.push(`${what}${detail ? `: ${detail}` : ''}`);
    return ok;
  }

  note(line: string): void {
    this.lines.push(line);
  }

  /** After a failure: the guests' logs under /tmp, for the report. */
  async collectLogs(guests: readonly RigGuest[]): Promise<void> {
    if (this.failures.length === 0) return;
    for (const guest of guests) {
      if (!guest.running) continue;
      const logs = await guest.exec('for f in /tmp/*.log; do echo "--- $f"; tail -c 3000 "$f"; done', { timeoutMs: 20_000 }).catch((error: Error) => ({ stdout: error.message }));
      this.lines.push(`--- logs of ${guest.name}:\n${logs.stdout}`);
    }
  }

  result(name: string): RigStepResult {
    return { name, failures: this.failures, lines: this.lines };
  }
}

/** Runs `command` until `done(stdout)` holds (exit code ignored), or throws at the deadline. */
export async function pollUntil(guest: RigGuest, command: string, done: (stdout: string) => boolean, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const result = await guest.exec(command, { timeoutMs: COMMAND_TIMEOUT_MS });
    last = `${result.stdout}${result.stderr}`;
    if (done(result.stdout)) return result.stdout;
    if (Date.now() > deadline) throw new Error(`${guest.name}: "${command}" did not reach the awaited state within ${timeoutMs} ms; last output: ${last.slice(-1000)}`);
    await sleep(POLL_PAUSE_MS);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The shared LUN's device name, the same on every guest (the runs assume one name). */
export async function lunDevice(guests: readonly RigGuest[]): Promise<string> {
  const names = await Promise.all(guests.map(async (guest) => (await guest.run('readlink -f /dev/rig-lun')).stdout.trim()));
  if (new Set(names).size !== 1) throw new Error(`the LUN has different names on the guests (${names.join(', ')}); the runs assume one name`);
  return names[0]!;
}

/** pvcreate, vgcreate and thinlv format on the LUN, then the hosts added: all on the master's guest. */
export async function createThinlvVg(log: RunLog, guest: RigGuest, lun: string, hosts: readonly string[]): Promise<void> {
  const devices = `--devices ${lun}`;
  await log.step(guest, 'pvcreate, vgcreate', `lvm pvcreate -y --metadatasize 4m ${lun} && lvm vgcreate ${VG} ${lun}`);
  await log.step(guest, 'thinlv format', `thinlv format ${VG} ${devices} --expected-lvs 100`);
  await log.step(guest, `thinlv host add ${hosts.join(', ')}`, hosts.map((host) => `thinlv host add ${VG} ${host} ${devices}`).join(' && '));
}

/** Starts `thinlv master` in the background; its log is /tmp/master.log (appended, so a restart keeps the first run's). */
export async function startMaster(log: RunLog, guest: RigGuest, lun: string, intervalMs: number): Promise<void> {
  // A stopped master leaves its pid in the lock file: wait for a new, live one, so that a
  // stop or a poke right after this start finds this master.
  const previous = (await guest.exec(`cat ${MASTER_LOCK} 2>/dev/null`)).stdout.trim();
  await log.step(guest, `thinlv master started (interval ${intervalMs} ms)`, `setsid thinlv master ${VG} --devices ${lun} --interval-ms ${intervalMs} --log-level info >> /tmp/master.log 2>&1 < /dev/null &`);
  await pollUntil(guest, `pid=$(cat ${MASTER_LOCK} 2>/dev/null) && kill -0 "$pid" && echo "$pid"`, (out) => /^\d+$/.test(out.trim()) && out.trim() !== previous, 120_000);
}

/** SIGTERM to the master (it finishes the pass in flight), and waits until it has exited. */
export async function stopMaster(log: RunLog, guest: RigGuest): Promise<void> {
  const started = Date.now();
  await guest.run(`kill -TERM $(cat ${MASTER_LOCK})`);
  await pollUntil(guest, `kill -0 $(cat ${MASTER_LOCK}) 2>/dev/null && echo alive || echo gone`, (out) => out.trim() === 'gone', 120_000);
  log.note(`${guest.name}: thinlv master stopped (SIGTERM, exited after ${Date.now() - started} ms)`);
}

/** Asks the master for a pass now (SIGUSR1): a claim waits for a pass, which a long interval would delay. */
export async function pokeMaster(guest: RigGuest): Promise<void> {
  await guest.exec(`kill -USR1 $(cat ${MASTER_LOCK}) 2>/dev/null`, { timeoutMs: 30_000 });
}

/** Starts `thinlv host run` in the background (log /tmp/host-HOST.log) and waits until its pool holds extents. */
export async function startHostDaemon(log: RunLog, guest: RigGuest, lun: string, host: string): Promise<void> {
  await log.step(guest, `host daemon ${host} started`, `setsid thinlv host run ${VG} ${host} --devices ${lun} --claim-wait-ms 120000 > /tmp/host-${host}.log 2>&1 < /dev/null &`);
}

export async function waitForPool(log: RunLog, guest: RigGuest, host: string): Promise<void> {
  const status = await pollUntil(guest, `thinlv host status ${VG} ${host}`, (out) => /pool [1-9]\d* extents/.test(out), 240_000);
  log.note(`${guest.name}: ${status.trim().split('\n')[0]}`);
}

/**
 * `thinlv lvchange -ay` on a host. The claim it makes waits for a master pass; with a
 * master on a long interval, `master` (the guest it runs on) is poked until it is done.
 */
export async function activate(log: RunLog, guest: RigGuest, lv: string, lun: string, master?: RigGuest): Promise<void> {
  const started = Date.now();
  const running = guest.run(`thinlv lvchange -ay ${VG}/${lv} --devices ${lun}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  let done = false;
  const finished = running.finally(() => {
    done = true;
  });
  while (master !== undefined && !done) {
    await Promise.race([finished.catch(() => undefined), sleep(2_000)]);
    if (!done) await pokeMaster(master);
  }
  await finished;
  log.note(`${guest.name}: thinlv lvchange -ay ${VG}/${lv} (${Date.now() - started} ms)`);
}

/** thinlv's extend of an LV to an absolute size on a host; returns the command's duration. */
export async function extendTo(guest: RigGuest, lv: string, sizeMib: number, lun: string): Promise<number> {
  const started = Date.now();
  await guest.run(`thinlv lvextend -L ${sizeMib}m ${VG}/${lv} --live --devices ${lun}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  return Date.now() - started;
}

/** The LV's size in metadata (stock lvs, read-only), in bytes. */
export async function metadataSizeBytes(guest: RigGuest, lv: string, lun: string): Promise<number> {
  const out = (await guest.run(`lvm lvs --readonly --devices ${lun} --noheadings --units b --nosuffix -o lv_size ${VG}/${lv}`, { timeoutMs: COMMAND_TIMEOUT_MS })).stdout.trim();
  const bytes = Number(out);
  if (!Number.isSafeInteger(bytes)) throw new Error(`${guest.name}: lvs printed "${out}" as the size of ${VG}/${lv}`);
  return bytes;
}

/** Polls until metadata says the LV is `bytes` long (the master replayed up to there). */
export async function waitForMetadataSize(guest: RigGuest, lv: string, lun: string, bytes: number, timeoutMs: number): Promise<void> {
  await pollUntil(guest, `lvm lvs --readonly --devices ${lun} --noheadings --units b --nosuffix -o lv_size ${VG}/${lv}`, (out) => Number(out.trim()) === bytes, timeoutMs);
}

/** The LV's live table on a guest; [] when no device of that name exists. */
export async function liveTable(guest: RigGuest, lv: string): Promise<TableLine[]> {
  const result = await guest.exec(`dmsetup table ${VG}-${lv}`, { timeoutMs: 30_000 });
  if (result.exitCode !== 0) return [];
  return parseTable(result.stdout);
}

/** The LV's linear table as stock LVM would build it from metadata, coalesced. */
export async function metadataTable(guest: RigGuest, lun: string, lv: string): Promise<TableLine[]> {
  const devices = `--devices ${lun}`;
  const blockName = lun.replace(/^\/dev\//, '');
  const device = (await guest.run(`cat /sys/block/${blockName}/dev`)).stdout.trim();
  const peStart = Number((await guest.run(`lvm pvs --readonly ${devices} --noheadings --units s --nosuffix -o pe_start ${lun}`)).stdout.trim());
  const extentSectors = Number((await guest.run(`lvm vgs --readonly ${devices} --noheadings --units s --nosuffix -o vg_extent_size ${VG}`)).stdout.trim());
  const segments = (await guest.run(`lvm lvs --readonly ${devices} --noheadings --segments -o seg_start_pe,seg_size_pe,seg_pe_ranges ${VG}/${lv}`)).stdout;
  const table: TableLine[] = [];
  for (const row of segments.split('\n').map((l) => l.trim()).filter((l) => l.length > 0)) {
    const match = /^(\d+)\s+(\d+)\s+\S+:(\d+)-(\d+)$/.exec(row);
    if (match === null) throw new Error(`cannot read segment row "${row}"`);
    const [startPe, sizePe, firstPe] = [Number(match[1]), Number(match[2]), Number(match[3])];
    const line = { startSector: startPe * extentSectors, lengthSectors: sizePe * extentSectors, device, offsetSector: peStart + firstPe * extentSectors };
    const previous = table[table.length - 1];
    if (previous !== undefined && previous.offsetSector + previous.lengthSectors === line.offsetSector && previous.startSector + previous.lengthSectors === line.startSector) {
      table[table.length - 1] = { ...previous, lengthSectors: previous.lengthSectors + line.lengthSectors };
    } else {
      table.push(line);
    }
  }
  table.sort((x, y) => x.startSector - y.startSector);
  return table;
}

export function parseTable(text: string): TableLine[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0)
    .map((line) => {
      const [start, length, target, device, offset] = line.split(/\s+/);
      if (target !== 'linear' || device === undefined) throw new Error(`unexpected table line "${line}"`);
      return { startSector: Number(start), lengthSectors: Number(length), device, offsetSector: Number(offset) };
    });
}

export function tableBytes(table: readonly TableLine[]): number {
  return table.reduce((sum, line) => sum + line.lengthSectors, 0) * SECTOR_BYTES;
}

export function sameTable(a: readonly TableLine[], b: readonly TableLine[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function formatTable(table: readonly TableLine[]): string {
  return table.map((line) => `${line.startSector}+${line.lengthSectors}->${line.device}@${line.offsetSector}`).join(', ') || '(empty)';
}

/** I6 after replay: the LV's live table on `guest` equals the table built from metadata. */
export async function expectTableIsMetadata(log: RunLog, guest: RigGuest, lun: string, lv: string, what: string): Promise<TableLine[]> {
  const live = await liveTable(guest, lv);
  const fromMetadata = await metadataTable(guest, lun, lv);
  log.expect(live.length > 0 && sameTable(live, fromMetadata), what, `live ${formatTable(live)}; metadata ${formatTable(fromMetadata)}`);
  return live;
}

/** Stock vgck and thinlv check, both clean. */
export async function expectVgClean(log: RunLog, guest: RigGuest, lun: string): Promise<void> {
  const vgck = await guest.exec(`lvm vgck --devices ${lun} ${VG}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  log.expect(vgck.exitCode === 0, 'I7: stock vgck accepts the VG', `${vgck.stdout}${vgck.stderr}`.trim().slice(0, 500));
  const check = await guest.exec(`thinlv check ${VG} --devices ${lun}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  log.expect(check.exitCode === 0, 'thinlv check finds nothing wrong', `exit ${check.exitCode}: ${`${check.stdout}${check.stderr}`.trim().slice(0, 800)}`);
}
