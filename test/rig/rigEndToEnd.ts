// The first end-to-end run of issue 15, on two rig guests sharing one LUN:
//
//   g1: pvcreate/vgcreate, thinlv format, host add hA hB, thinlv master, host daemon hA
//   g2: host daemon hB
//   g1 (host A): thin LV created, activated (`thinlv lvchange -ay`), a writer writes a
//       pattern with O_DIRECT through /dev/mapper past the LV's end while
//       `thinlv lvextend --live` grows it; the loaded table covers the new size
//   master replays; A's table equals the table built from metadata (I6)
//   A deactivates; g2 (host B) activates, its table equals metadata's, it reads back
//   every byte A wrote.
//
// Tables "from metadata" are computed here from `lvm lvs --segments` and the PV's
// pe_start, independently of thinlv's code: what stock LVM would map (adjacent
// segments that continue each other coalesced, as thinlv's tables are).

import { startRig, type RigConfig, type RigGuest } from './rigHarness.js';
import type { RigStepResult } from './rigSmoke.js';
import { COMMAND_TIMEOUT_MS, formatTable, GUEST_DIST, metadataTable, parseTable, pollUntil, sameTable, tableBytes, VG } from './rigSteps.js';

const LV = 'disk1';
const DM_NAME = `${VG}-${LV}`;
const INITIAL_BYTES = 8 * 1024 ** 2;
const GROWN_BYTES = 24 * 1024 ** 2;
const WRITE_BLOCK_BYTES = 256 * 1024;
const SEED = `rig${Date.now().toString(36)}`;

export async function runRigEndToEnd(config: RigConfig = {}): Promise<RigStepResult> {
  const failures: string[] = [];
  const lines: string[] = [];
  const rig = await startRig({ ...config, guestCount: 2 });
  const [hostA, hostB] = rig.guests as [RigGuest, RigGuest];
  const step = async (guest: RigGuest, what: string, command: string, timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> => {
    const started = Date.now();
    const result = await guest.run(command, { timeoutMs });
    lines.push(`${guest.name}: ${what} (${Date.now() - started} ms)`);
    return result.stdout;
  };
  const expect = (ok: boolean, what: string, detail = ''): void => {
    lines.push(`${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ` (${detail})` : ''}`);
    if (!ok) failures.push(`${what}${detail ? `: ${detail}` : ''}`);
  };
  let keepWorkDir = true;
  try {
    lines.push(`boot: ${hostA.name} ${hostA.lastBootMs} ms, ${hostB.name} ${hostB.lastBootMs} ms (booted together)`);
    const lun = (await hostA.run('readlink -f /dev/rig-lun')).stdout.trim();
    const lunOnB = (await hostB.run('readlink -f /dev/rig-lun')).stdout.trim();
    if (lun !== lunOnB) throw new Error(`the LUN is ${lun} on ${hostA.name} but ${lunOnB} on ${hostB.name}; the run assumes one name`);
    const devices = `--devices ${lun}`;

    await step(hostA, 'pvcreate, vgcreate', `lvm pvcreate -y --metadatasize 4m ${lun} && lvm vgcreate ${VG} ${lun}`);
    await step(hostA, 'thinlv format', `thinlv format ${VG} ${devices} --expected-lvs 100`);
    await step(hostA, 'thinlv host add hA, hB', `thinlv host add ${VG} hA ${devices} && thinlv host add ${VG} hB ${devices}`);
    await step(hostA, 'thinlv master started', `setsid thinlv master ${VG} ${devices} --interval-ms 1000 --log-level info > /tmp/master.log 2>&1 < /dev/null &`);
    await step(hostA, 'host daemon hA started', `setsid thinlv host run ${VG} hA ${devices} --claim-wait-ms 120000 > /tmp/host.log 2>&1 < /dev/null &`);
    await step(hostB, 'host daemon hB started', `setsid thinlv host run ${VG} hB ${devices} --claim-wait-ms 120000 > /tmp/host.log 2>&1 < /dev/null &`);
    for (const [guest, host] of [[hostA, 'hA'], [hostB, 'hB']] as const) {
      const status = await pollUntil(guest, `thinlv host status ${VG} ${host}`, (out) => /pool [1-9]\d* extents/.test(out), 240_000);
      lines.push(`${guest.name}: ${status.trim().split('\n')[0]}`);
    }
    // The daemons load tables through the ioctls (the rig's build requires the addon).
    for (const guest of [hostA, hostB]) {
      const serving = (await guest.exec('grep -h "host allocator serving" /tmp/host.log')).stdout;
      const backend = /"deviceMapperBackend":"([^"]*)"/.exec(serving)?.[1] ?? '(not logged)';
      expect(backend.startsWith('ioctls'), `${guest.name}: the host daemon uses the device-mapper ioctls`, backend);
    }

    await step(hostA, 'thinlv lvcreate (thin, 8 MiB allocated)', `thinlv lvcreate ${VG} -n ${LV} -V 256m -L ${INITIAL_BYTES / 1024 ** 2}m ${devices}`);
    await step(hostA, 'thinlv lvchange -ay on host A', `thinlv lvchange -ay ${VG}/${LV} ${devices}`);
    const mapper = `/dev/mapper/${DM_NAME}`;
    expect((await hostA.exec(`test -b ${mapper}`)).exitCode === 0, `${mapper} is a block device on ${hostA.name}`);
    const before = parseTable(await step(hostA, 'dmsetup table (before the extend)', `dmsetup table ${DM_NAME}`));
    expect(tableBytes(before) === INITIAL_BYTES, 'the activated table covers the initial size', formatTable(before));

    // The writer blocks at the old end (ENOSPC) until the extend's reload makes room.
    await step(hostA, 'writer started', `setsid node ${GUEST_DIST}/test/rig/guest/patternIo.js write ${mapper} ${GROWN_BYTES} ${WRITE_BLOCK_BYTES} ${SEED} 240000 > /tmp/writer.log 2>&1 < /dev/null &`);
    const waiting = await pollUntil(hostA, 'cat /tmp/writer.log', (out) => /waiting at block/.test(out) || /"op":"write"/.test(out) || /Error/.test(out), 120_000);
    expect(new RegExp(`waiting at block ${INITIAL_BYTES / WRITE_BLOCK_BYTES}\\b`).test(waiting), 'the writer filled the LV and waits at its old end', waiting.trim().slice(0, 300));
    await step(hostA, `thinlv lvextend -L ${GROWN_BYTES / 1024 ** 2}m --live`, `thinlv lvextend -L ${GROWN_BYTES / 1024 ** 2}m ${VG}/${LV} --live ${devices}`);
    const written = await pollUntil(hostA, 'cat /tmp/writer.log', (out) => /"op":"write"/.test(out) || /Error/.test(out), 240_000);
    expect(/"op":"write"/.test(written), 'the writer wrote past the old end after the extend', written.trim().split('\n').pop() ?? '');
    const afterExtend = parseTable(await step(hostA, 'dmsetup table (after the extend, before replay)', `dmsetup table ${DM_NAME}`));
    expect(tableBytes(afterExtend) === GROWN_BYTES, 'the live table covers the grown size before replay', formatTable(afterExtend));
    expect(sameTable(afterExtend.slice(0, before.length - 1), before.slice(0, -1)) && afterExtend[0]?.offsetSector === before[0]?.offsetSector, 'the extend kept the old mapping of the start of the LV', `${formatTable(before)} -> ${formatTable(afterExtend)}`);

    // thinlv's own view before replay: its lvs counts unreplayed extents in the size.
    const thinlvSize = (await hostA.run(`thinlv lvs ${VG}/${LV} ${devices} --noheadings --units b --nosuffix -o lv_size`, { timeoutMs: COMMAND_TIMEOUT_MS })).stdout.trim();
    expect(Number(thinlvSize) === tableBytes(afterExtend), 'before replay, the live table is as long as thinlv lvs says the LV is', `thinlv lvs ${thinlvSize} bytes, table ${tableBytes(afterExtend)} bytes`);
    await pollUntil(hostA, `lvm lvs --readonly ${devices} --noheadings --units b --nosuffix -o lv_size ${VG}/${LV}`, (out) => Number(out.trim()) === GROWN_BYTES, 120_000);
    lines.push('master replayed the extend (metadata size is the grown size)');
    const fromMetadataA = await metadataTable(hostA, lun, LV);
    const liveA = parseTable((await hostA.run(`dmsetup table ${DM_NAME}`)).stdout);
    expect(sameTable(liveA, fromMetadataA), 'I6 on host A after replay: the live table equals the table built from metadata', `live ${formatTable(liveA)}; metadata ${formatTable(fromMetadataA)}`);

    await step(hostA, 'thinlv lvchange -an on host A', `thinlv lvchange -an ${VG}/${LV} ${devices}`);
    expect((await hostA.exec(`dmsetup info ${DM_NAME}`)).exitCode !== 0, `${DM_NAME} is gone from ${hostA.name}`);
    await step(hostB, 'thinlv lvchange -ay on host B', `thinlv lvchange -ay ${VG}/${LV} ${devices}`);
    const liveB = parseTable((await hostB.run(`dmsetup table ${DM_NAME}`)).stdout);
    const fromMetadataB = await metadataTable(hostB, lun, LV);
    expect(sameTable(liveB, fromMetadataB), 'I6 on host B: the live table equals the table built from metadata', `live ${formatTable(liveB)}; metadata ${formatTable(fromMetadataB)}`);
    expect(sameTable(liveB, liveA), 'host B maps the LV exactly as host A did');
    const verify = await hostB.exec(`node ${GUEST_DIST}/test/rig/guest/patternIo.js verify ${mapper} ${GROWN_BYTES} ${WRITE_BLOCK_BYTES} ${SEED}`, { timeoutMs: COMMAND_TIMEOUT_MS });
    expect(verify.exitCode === 0 && /"badCount":0/.test(verify.stdout), `host B reads back every byte host A wrote (${GROWN_BYTES} bytes)`, `${verify.stdout.trim()} ${verify.stderr.trim().slice(0, 500)}`);
    await step(hostB, 'thinlv lvchange -an on host B', `thinlv lvchange -an ${VG}/${LV} ${devices}`);
    const vgck = await hostA.exec(`lvm vgck ${devices} ${VG}`, { timeoutMs: COMMAND_TIMEOUT_MS });
    expect(vgck.exitCode === 0, 'I7: stock vgck accepts the VG', `${vgck.stdout}${vgck.stderr}`.trim().slice(0, 500));
    const check = await hostA.exec(`thinlv check ${VG} ${devices}`, { timeoutMs: COMMAND_TIMEOUT_MS });
    expect(check.exitCode === 0, 'thinlv check finds nothing wrong', `exit ${check.exitCode}: ${`${check.stdout}${check.stderr}`.trim().slice(0, 800)}`);
    keepWorkDir = failures.length > 0;
  } catch (error) {
    failures.push(`the run stopped: ${(error as Error).message}`);
  } finally {
    if (failures.length > 0) {
      for (const guest of [hostA, hostB]) {
        if (!guest.running) continue;
        const logs = await guest.exec('for f in /tmp/*.log; do echo "--- $f"; tail -c 3000 "$f"; done', { timeoutMs: 20_000 }).catch((error: Error) => ({ stdout: error.message }));
        lines.push(`--- logs of ${guest.name}:\n${logs.stdout}`);
      }
    }
    await rig.close({ keepWorkDir });
  }
  return { name: 'end to end: a thin LV grown live on host A under a writer, read back on host B', failures, lines };
}
