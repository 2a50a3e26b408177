// Issue 15's master fail-over, on three rig guests sharing one LUN:
//
//   g1: VG, thinlv format, hosts hB hC, thinlv master (the pool master's machine)
//   g2: host daemon hB, thin LV lvb active; g3: host daemon hC, thin LV lvc active
//   both LVs extended with the master up; then g1's qemu is SIGKILLed right after one
//   more extend (likely unreplayed)
//   with no master: hB and hC keep extending from their pools (every extend must
//   succeed); `thinlv status` on the LUN reports the master down; a metadata command
//   on g2 is refused, naming the dead master's machine
//   fail-over: `thinlv master` started on g2, which takes the VG over
//   convergence: metadata holds every acknowledged extend of both hosts, nothing is left
//   unreplayed, each host's live table equals metadata's (I6), an extend after the
//   fail-over is replayed by the new master, and the VG checks clean.

import { startRig, type RigConfig, type RigGuest } from './rigHarness.js';
import type { RigStepResult } from './rigSmoke.js';
import {
  COMMAND_TIMEOUT_MS, MIB, RunLog, VG, activate, createThinlvVg, expectTableIsMetadata, expectVgClean, extendTo, lunDevice,
  metadataSizeBytes, pollUntil, startHostDaemon, startMaster, waitForMetadataSize, waitForPool,
} from './rigSteps.js';

const MASTER_INTERVAL_MS = 2_000;
const INITIAL_MIB = 8;
const STEP_MIB = 4;
/** Extends each host makes while no master runs. */
const EXTENDS_WITHOUT_MASTER = 3;
const CONVERGE_TIMEOUT_MS = 240_000;
/** `thinlv status` calls a master down after 5 intervals plus 5 s of allowed clock skew. */
const MASTER_DOWN_TIMEOUT_MS = 120_000;

interface Host {
  readonly guest: RigGuest;
  readonly host: string;
  readonly lv: string;
  /** The size of the last extend the host acknowledged. */
  ackedMib: number;
}

export async function runRigMasterFailover(config: RigConfig = {}): Promise<RigStepResult> {
  const log = new RunLog();
  const rig = await startRig({ ...config, guestCount: 3 });
  const [oldMaster, guestB, guestC] = rig.guests as [RigGuest, RigGuest, RigGuest];
  const hosts: Host[] = [
    { guest: guestB, host: 'hB', lv: 'lvb', ackedMib: INITIAL_MIB },
    { guest: guestC, host: 'hC', lv: 'lvc', ackedMib: INITIAL_MIB },
  ];
  try {
    log.note(`boot: ${rig.guests.map((g) => `${g.name} ${g.lastBootMs} ms`).join(', ')} (booted together)`);
    const lun = await lunDevice(rig.guests);
    await createThinlvVg(log, oldMaster, lun, hosts.map((h) => h.host));
    await startMaster(log, oldMaster, lun, MASTER_INTERVAL_MS);
    for (const h of hosts) await startHostDaemon(log, h.guest, lun, h.host);
    for (const h of hosts) await waitForPool(log, h.guest, h.host);
    for (const h of hosts) {
      await log.step(oldMaster, `thinlv lvcreate ${h.lv}`, `thinlv lvcreate ${VG} -n ${h.lv} -V 256m -L ${INITIAL_MIB}m --devices ${lun}`);
      await activate(log, h.guest, h.lv, lun);
    }
    // Extends with the master up; the last one just before the kill is likely not replayed.
    await Promise.all(hosts.map((h) => extendBy(log, h, lun)));
    await extendBy(log, hosts[0]!, lun);
    const pid = oldMaster.pid;
    await oldMaster.kill();
    log.note(`${oldMaster.name}: the master's qemu (pid ${pid}) SIGKILLed right after ${hosts[0]!.host}'s extend to ${hosts[0]!.ackedMib} MiB`);
    const atKill = await metadataSizeBytes(guestB, hosts[0]!.lv, lun);
    log.note(`metadata of ${hosts[0]!.lv} after the kill: ${atKill / MIB} MiB of ${hosts[0]!.ackedMib} MiB acknowledged`);

    await withoutMaster(log, hosts, lun, oldMaster.name);
    await failOver(log, guestB, lun, oldMaster.name);
    await converge(log, hosts, lun);
  } catch (error) {
    log.failures.push(`the run stopped: ${(error as Error).message}`);
  } finally {
    await log.collectLogs(rig.guests);
    await rig.close({ keepWorkDir: log.failures.length > 0 });
  }
  return log.result("master fail-over: the master's guest killed, hosts extend from their pools, a new master on another guest converges");
}

async function extendBy(log: RunLog, h: Host, lun: string): Promise<void> {
  const target = h.ackedMib + STEP_MIB;
  const ms = await extendTo(h.guest, h.lv, target, lun);
  h.ackedMib = target;
  log.note(`${h.guest.name}: ${h.host} extended ${h.lv} to ${target} MiB (${ms} ms)`);
}

/** The hosts carry on from their pools while no master runs; the LUN's status says the master is down. */
async function withoutMaster(log: RunLog, hosts: Host[], lun: string, deadMaster: string): Promise<void> {
  const failures: string[] = [];
  await Promise.all(
    hosts.map(async (h) => {
      for (let i = 0; i < EXTENDS_WITHOUT_MASTER; i++) {
        try {
          await extendBy(log, h, lun);
        } catch (error) {
          failures.push(`${h.host}: ${(error as Error).message.slice(0, 600)}`);
          return;
        }
      }
    }),
  );
  log.expect(failures.length === 0, `with no master, every host extend from its pool succeeds (${EXTENDS_WITHOUT_MASTER} per host)`, failures.join('; '));
  const guest = hosts[0]!.guest;
  const status = await pollUntil(guest, `thinlv status ${VG} --devices ${lun} --json`, (out) => masterField(out, 'running') === false, MASTER_DOWN_TIMEOUT_MS);
  log.expect(masterField(status, 'host') === deadMaster, `thinlv status reads from the LUN that the master on ${deadMaster} is down`, `master ${JSON.stringify(parseJson(status)?.['master'])}`.slice(0, 400));
  const refused = await guest.exec(`thinlv lvcreate ${VG} -n refused -V 64m --devices ${lun} --json`, { timeoutMs: COMMAND_TIMEOUT_MS });
  const text = `${refused.stdout}${refused.stderr}`;
  log.expect(refused.exitCode !== 0 && /NOT_ON_MASTER/.test(text) && text.includes(deadMaster), `a metadata command on ${guest.name} is refused, naming ${deadMaster} (the VG's master tag)`, `exit ${refused.exitCode}: ${text.trim().slice(0, 300)}`);
}

/** Starts the master on `guest`, which takes the VG over from the dead one. */
async function failOver(log: RunLog, guest: RigGuest, lun: string, deadMaster: string): Promise<void> {
  await startMaster(log, guest, lun, MASTER_INTERVAL_MS);
  const tags = await pollUntil(guest, `lvm vgs --readonly --devices ${lun} --noheadings -o vg_tags ${VG}`, (out) => out.includes(`thinlv_master=${guest.name}`), 120_000);
  log.expect(!tags.includes(`thinlv_master=${deadMaster}`), `the VG names ${guest.name} as its master, no longer ${deadMaster}`, tags.trim());
  const masterLog = (await guest.run('cat /tmp/master.log')).stdout;
  log.expect(/taking over as master from another machine/.test(masterLog), 'the new master logged that it took over from another machine');
}

/** Every acknowledged extend in metadata, nothing unreplayed, I6 on each host, and the new master serving. */
async function converge(log: RunLog, hosts: Host[], lun: string): Promise<void> {
  const started = Date.now();
  const acked = hosts.map((h) => `${h.lv} ${h.ackedMib} MiB`).join(', ');
  let converged = true;
  try {
    for (const h of hosts) await waitForMetadataSize(h.guest, h.lv, lun, h.ackedMib * MIB, CONVERGE_TIMEOUT_MS);
  } catch (error) {
    converged = false;
    log.note((error as Error).message);
  }
  if (!log.expect(converged, `I3: metadata comes to hold every acknowledged extend (${acked})`, `${Date.now() - started} ms after the new master started`)) return;
  const status = parseJson((await hosts[0]!.guest.exec(`thinlv status ${VG} --devices ${lun} --json`, { timeoutMs: COMMAND_TIMEOUT_MS })).stdout);
  const statusHosts = (status?.['hosts'] ?? []) as { host: string; unreplayedRecords: number | null }[];
  const left = statusHosts.filter((h) => h.unreplayedRecords !== 0);
  log.expect(statusHosts.length === hosts.length && left.length === 0, 'thinlv status: no host has records left unreplayed', JSON.stringify(statusHosts.map((h) => [h.host, h.unreplayedRecords])));
  log.expect(masterField(JSON.stringify(status), 'running') === true && masterField(JSON.stringify(status), 'host') === hosts[0]!.guest.name, `thinlv status: the master runs on ${hosts[0]!.guest.name}`, JSON.stringify(status?.['master']).slice(0, 300));
  for (const h of hosts) await expectTableIsMetadata(log, h.guest, lun, h.lv, `I6 on ${h.host} (${h.guest.name}) after the new master's passes: the live table of ${h.lv} equals metadata's`);
  // The new master serves: one more extend is replayed.
  const last = hosts[1]!;
  await extendBy(log, last, lun);
  await waitForMetadataSize(last.guest, last.lv, lun, last.ackedMib * MIB, CONVERGE_TIMEOUT_MS);
  log.note(`the new master replayed ${last.host}'s extend to ${last.ackedMib} MiB`);
  await expectTableIsMetadata(log, last.guest, lun, last.lv, `I6 on ${last.host} after that replay`);
  await expectVgClean(log, hosts[0]!.guest, lun);
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

function masterField(statusJson: string, field: string): unknown {
  const master = parseJson(statusJson)?.['master'] as Record<string, unknown> | undefined;
  return master?.[field];
}
