// Issue 15's stock-LVM activation, on one rig guest: what stock `vgchange -ay`,
// `lvchange -ay` and `lvchange --refresh` do to a thin LV whose host has journaled
// extents the master has not replayed, and what `thinlv check` says about it.
//
//   g1: VG, thinlv format, host hA, thinlv master, host daemon hA; a thin LV activated
//       by thinlv, then the master stopped and the LV extended (its new extents are in
//       hA's journal only: metadata is shorter than the live table)
//   stock `lvchange --refresh` and `vgchange --refresh`: the live table must stay
//       metadata plus unreplayed extents (I6)
//   `thinlv check`: must name the LV whose unreplayed extents a stock activation or
//       refresh would leave out
//   thinlv deactivates; stock `vgchange -ay` and `lvchange -ay` must build no table for
//       the thin LV (activation-skip); the control, `lvchange -ay -K` (ignore the skip
//       flag), shows the short table they would otherwise build, and is undone
//   the master again: it replays, thinlv activates the full LV (I6), the VG checks clean.

import { startRig, type RigConfig, type RigGuest } from './rigHarness.js';
import type { RigStepResult } from './rigSmoke.js';
import {
  COMMAND_TIMEOUT_MS, MIB, RunLog, VG, activate, createThinlvVg, expectTableIsMetadata, expectVgClean, extendTo, formatTable,
  liveTable, lunDevice, metadataSizeBytes, metadataTable, sameTable, startHostDaemon, startMaster, stopMaster, tableBytes,
  waitForMetadataSize, waitForPool,
} from './rigSteps.js';

const LV = 'disk1';
const DM_NAME = `${VG}-${LV}`;
const INITIAL_MIB = 8;
const GROWN_MIB = 16;
const MASTER_INTERVAL_MS = 2_000;

export async function runRigStockActivation(config: RigConfig = {}): Promise<RigStepResult> {
  const log = new RunLog();
  const rig = await startRig({ ...config, guestCount: 1 });
  const guest = rig.guests[0]!;
  try {
    log.note(`boot: ${guest.lastBootMs} ms`);
    const lun = await lunDevice(rig.guests);
    await createThinlvVg(log, guest, lun, ['hA']);
    await startMaster(log, guest, lun, MASTER_INTERVAL_MS);
    await startHostDaemon(log, guest, lun, 'hA');
    await waitForPool(log, guest, 'hA');
    await log.step(guest, `thinlv lvcreate ${LV} (thin, ${INITIAL_MIB} MiB allocated)`, `thinlv lvcreate ${VG} -n ${LV} -V 256m -L ${INITIAL_MIB}m --devices ${lun}`);
    const skip = (await guest.run(`lvm lvs --readonly --devices ${lun} --noheadings -o lv_skip_activation ${VG}/${LV}`)).stdout.trim();
    // A binary report field prints its name when set (or 1 with --binary), nothing when not.
    log.expect(skip === 'skip activation' || skip === '1', 'the thin LV carries LVM\'s activation-skip flag', `lv_skip_activation "${skip}"`);
    await activate(log, guest, LV, lun);
    await stopMaster(log, guest);
    const ms = await extendTo(guest, LV, GROWN_MIB, lun);
    log.note(`${guest.name}: thinlv lvextend to ${GROWN_MIB} MiB with the master stopped (${ms} ms)`);
    const grown = await liveTable(guest, LV);
    const metadataBytes = await metadataSizeBytes(guest, LV, lun);
    log.expect(tableBytes(grown) === GROWN_MIB * MIB && metadataBytes === INITIAL_MIB * MIB, 'the live table covers the extend, metadata does not have it yet (the state a stock table would be short in)', `table ${tableBytes(grown) / MIB} MiB, metadata ${metadataBytes / MIB} MiB`);

    await stockRefresh(log, guest, lun, grown);
    await checkNamesUnreplayed(log, guest, lun);
    await log.step(guest, 'thinlv lvchange -an (journals a release; no master needed)', `thinlv lvchange -an ${VG}/${LV} --devices ${lun}`);
    await stockActivation(log, guest, lun);

    await startMaster(log, guest, lun, MASTER_INTERVAL_MS);
    await waitForMetadataSize(guest, LV, lun, GROWN_MIB * MIB, 120_000);
    log.note('the master replayed the extend (metadata is the grown size)');
    await activate(log, guest, LV, lun);
    const live = await expectTableIsMetadata(log, guest, lun, LV, 'I6 after replay: thinlv activates the whole LV, as metadata has it');
    log.expect(sameTable(live, grown), 'the table after replay is the one the extend had loaded');
    await log.step(guest, 'thinlv lvchange -an', `thinlv lvchange -an ${VG}/${LV} --devices ${lun}`);
    await expectVgClean(log, guest, lun);
  } catch (error) {
    log.failures.push(`the run stopped: ${(error as Error).message}`);
  } finally {
    await log.collectLogs(rig.guests);
    await rig.close({ keepWorkDir: log.failures.length > 0 });
  }
  return log.result('stock activation: stock vgchange/lvchange on a thin LV with unreplayed extents, and what thinlv check says');
}

/** Stock refreshes of the VG and of the LV leave the live table alone (it stays metadata plus unreplayed). */
async function stockRefresh(log: RunLog, guest: RigGuest, lun: string, grown: Awaited<ReturnType<typeof liveTable>>): Promise<void> {
  // What stock LVM makes of a device thinlv loaded (thinlv gives it no LVM dm uuid).
  const seen = await guest.exec(`lvm lvs --devices ${lun} --noheadings -o lv_attr,lv_active,lv_size --units b --nosuffix ${VG}/${LV}; dmsetup info -c --noheadings -o name,uuid ${DM_NAME}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  log.note(`while thinlv has it active: stock lvs "attr active size" and dmsetup "name:uuid": ${`${seen.stdout}${seen.stderr}`.trim().replace(/\s+/g, ' ').slice(0, 300)}`);
  for (const command of [`lvm lvchange --refresh ${VG}/${LV} --devices ${lun}`, `lvm vgchange --refresh ${VG} --devices ${lun}`]) {
    const result = await guest.exec(command, { timeoutMs: COMMAND_TIMEOUT_MS });
    const after = await liveTable(guest, LV);
    log.note(`stock "${command.replace(` --devices ${lun}`, '')}": exit ${result.exitCode}, "${`${result.stdout}${result.stderr}`.trim().replace(/\s+/g, ' ').slice(0, 300)}"`);
    log.expect(sameTable(after, grown), `I6 after stock ${command.split(' ')[1]} --refresh: the live table still holds the unreplayed extents`, `after ${formatTable(after)}; before ${formatTable(grown)}`);
  }
}

/** thinlv check, with an LV whose extents are journaled only, must name it. */
async function checkNamesUnreplayed(log: RunLog, guest: RigGuest, lun: string): Promise<void> {
  const check = await guest.exec(`thinlv check ${VG} --devices ${lun} --json`, { timeoutMs: COMMAND_TIMEOUT_MS });
  let findings: { severity: string; code: string; message: string; data?: Record<string, unknown> }[] = [];
  try {
    findings = (JSON.parse(check.stdout) as { findings: typeof findings }).findings;
  } catch {
    log.expect(false, 'thinlv check --json prints a report', `exit ${check.exitCode}: ${`${check.stdout}${check.stderr}`.slice(0, 500)}`);
    return;
  }
  const naming = findings.filter((f) => f.data?.['lv'] === LV || f.message.includes(LV));
  log.note(`thinlv check (exit ${check.exitCode}): ${findings.map((f) => `${f.severity} ${f.code}`).join(', ') || 'no findings'}`);
  log.expect(naming.length > 0, `thinlv check names ${LV}, whose unreplayed extents a stock refresh or activation would leave out`, naming.map((f) => `${f.code}: ${f.message}`).join(' | ').slice(0, 500) || 'no finding names it');
}

/** Stock activation builds no table for the thin LV; with the skip flag ignored it would build a short one. */
async function stockActivation(log: RunLog, guest: RigGuest, lun: string): Promise<void> {
  for (const command of [`lvm vgchange -ay ${VG} --devices ${lun}`, `lvm lvchange -ay ${VG}/${LV} --devices ${lun}`]) {
    const result = await guest.exec(command, { timeoutMs: COMMAND_TIMEOUT_MS });
    const exists = (await guest.exec(`dmsetup info ${DM_NAME}`, { timeoutMs: 30_000 })).exitCode === 0;
    log.note(`stock "${command.replace(` --devices ${lun}`, '')}": exit ${result.exitCode}, "${`${result.stdout}${result.stderr}`.trim().replace(/\s+/g, ' ').slice(0, 300)}"`);
    log.expect(!exists, `stock ${command.split(' ')[1]} -ay builds no table for the thin LV`, exists ? formatTable(await liveTable(guest, LV)) : '');
  }
  const others = (await guest.run('dmsetup ls')).stdout.trim().replace(/\s+/g, ' ');
  log.note(`dm devices after the stock activations: ${others}`);
  // The control: with activation-skip ignored, stock LVM maps the LV from metadata alone.
  const forced = await guest.exec(`lvm lvchange -ay -K ${VG}/${LV} --devices ${lun}`, { timeoutMs: COMMAND_TIMEOUT_MS });
  const short = await liveTable(guest, LV);
  const fromMetadata = await metadataTable(guest, lun, LV);
  log.expect(forced.exitCode === 0 && sameTable(short, fromMetadata) && tableBytes(short) === INITIAL_MIB * MIB, `control: stock lvchange -ay -K (skip flag ignored) builds the short table, metadata's ${INITIAL_MIB} MiB of ${GROWN_MIB} MiB`, `exit ${forced.exitCode}, table ${formatTable(short)}`);
  await log.step(guest, 'stock vgchange -an (undoes the stock activations)', `lvm vgchange -an ${VG} --devices ${lun}`);
  log.expect((await guest.exec(`dmsetup info ${DM_NAME}`, { timeoutMs: 30_000 })).exitCode !== 0, 'the forced stock table is gone');
}
