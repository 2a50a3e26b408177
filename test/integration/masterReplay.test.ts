import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { hostLvNames, readThinlvVg } from '../../src/format/thinlvVg.js';
import { ringLocation, type RingLocation } from '../../src/rings/ringRegions.js';
import { readVgMetadata } from '../../src/lvm/commitBatch.js';
import { MasterSession, runPass } from '../../src/master/replayPass.js';
import { addHost, removeHost } from '../../src/master/hostMembership.js';
import { toUuidRanges } from '../../src/replay/planReplay.js';
import { expectInvariantsAfterReplay } from '../fixtures/invariants.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { CLI_PATH, runCli, startCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();

describe.skipIf(skipReason !== undefined)('replay on a real VG', () => {
  test('10,000 records from 8 hosts land in one commit; a second pass changes nothing; vgck, lvs and thinlv check agree', async () => {
    const hostNames = Array.from({ length: 8 }, (_, i) => `host${i}`);
    const t = await createThinlvTestVg({ sizeBytes: 64 * 1024 ** 3, hosts: hostNames, thinLvCount: 100, quantumExtents: 1300, lowWaterExtents: 10 });
    const hosts: AllocatorHost[] = [];
    try {
      for (const name of hostNames) {
        const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, name);
        hosts.push(host);
        expect(await host.applyGrants()).toBe(true);
      }
      // 1,250 one-extent allocations per host, spread over 100 LVs, issued 25 at a time
      // so group commit shares writes as it would on a busy host.
      await Promise.all(
        hosts.map(async (host, h) => {
          for (let batch = 0; batch < 50; batch++) {
            // Host h holds the LVs h, h + 8, h + 16, ... (the fixture hands them out round-robin).
            const mine = t.thinLvs.filter((_, n) => n % hosts.length === h);
            const lvs = Array.from({ length: 25 }, (_, i) => mine[(batch * 25 + i) % mine.length]!);
            // One request per LV in flight at a time, as the allocator serialises extends of one LV.
            await Promise.all([...new Set(lvs)].map(async (lv) => {
              for (const _ of lvs.filter((name) => name === lv)) await host.allocate(lv, 1);
            }));
          }
        }),
      );
      const recordCount = hosts.reduce((sum, h) => sum + h.acknowledged.length, 0);
      expect(recordCount).toBe(8 * 50 * 25);

      const session = new MasterSession();
      const pass = await runPass(t.deps(), session, t.vg.vgName);
      expect(pass.replayedRecordCount).toBe(10_000);
      expect(pass.seqnoAfter).toBe(pass.seqnoBefore + 1);
      expect(pass.moreWaiting).toBe(false);

      const again = await runPass(t.deps(), session, t.vg.vgName);
      expect(again.committed).toBe(false);
      expect(again.seqnoAfter).toBe(pass.seqnoAfter);

      await expectInvariantsAfterReplay(t.vg, hosts, 1);
      // Stock lvs agrees with what thinlv inspect reports for every LV.
      const inspect = JSON.parse((await runCli(['inspect', t.vg.vgName, '--json', ...t.cliArgs()])).stdout) as { lvs: { name: string; extentCount: number }[] };
      const { stdout } = await t.vg.lvm.run('lvs', ['--reportformat', 'json', '-o', 'lv_name,seg_size_pe', '--segments', t.vg.vgName]);
      const lvsRows = (JSON.parse(stdout) as { report: { seg: { lv_name: string; seg_size_pe: string }[] }[] }).report[0]!.seg;
      for (const lv of inspect.lvs) {
        expect(lvsRows.filter((r) => r.lv_name === lv.name).reduce((n, r) => n + Number(r.seg_size_pe), 0), lv.name).toBe(lv.extentCount);
      }
      const check = await runCli(['check', t.vg.vgName, ...t.cliArgs()]);
      expect(check.exitCode, check.stdout).toBe(0);
    } finally {
      for (const host of hosts) await host.close();
      await t.destroy();
    }
  });

  test('when the VG seqno moves underneath a pass, its commit is refused, it re-reads, retries, and applies each record once', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 2, quantumExtents: 32, lowWaterExtents: 4 });
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await host.applyGrants();
      for (let i = 0; i < 6; i++) await host.allocate(t.thinLvs[i % 2]!, 1);
      let interfered = 0;
      const faults = {
        async hit(point: string) {
          // An operator's lvm command lands between the pass's read and its commit, twice.
          if (point === 'master.afterRead' && interfered < 2) {
            interfered++;
            await t.vg.lvm.run('lvchange', ['--addtag', `by_hand_${interfered}`, `${t.vg.vgName}/${t.thinLvs[0]}`]);
          }
        },
      };
      const before = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const pass = await runPass(t.deps(faults), new MasterSession(), t.vg.vgName);
      expect(interfered).toBe(2);
      expect(pass.replayedRecordCount).toBe(6);
      expect(pass.seqnoAfter).toBe(before.seqno + 3);
      const after = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(after.lvs.find((lv) => lv.name === t.thinLvs[0])?.tags).toEqual(expect.arrayContaining(['by_hand_1', 'by_hand_2']));
      await expectInvariantsAfterReplay(t.vg, [host], 1);
    } finally {
      await host.close();
      await t.destroy();
    }
  });

  test('a second master that replays and consumes between a pass reading the VG and opening the journals leaves that pass stale: it re-reads and retries, never fails with a journal error', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 2, quantumExtents: 32, lowWaterExtents: 4 });
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await host.applyGrants();
      for (let i = 0; i < 4; i++) await host.allocate(t.thinLvs[i % 2]!, 1);
      let other: Awaited<ReturnType<typeof runPass>> | undefined;
      const faults = {
        async hit(point: string) {
          // Another master (another machine, by mistake) runs a whole pass right after this
          // one read the VG: it applies the records and moves the journal's consumer past
          // the applied seq this pass read.
          if (point === 'master.afterRead' && other === undefined) other = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
        },
      };
      const pass = await runPass(t.deps(faults), new MasterSession(), t.vg.vgName);
      expect(other).toMatchObject({ committed: true, replayedRecordCount: 4 });
      expect(pass.replayedRecordCount).toBe(0);
      expect(pass.seqnoBefore).toBe(other!.seqnoAfter);
      // Records journaled since are replayed by the next pass, once.
      await host.allocate(t.thinLvs[0]!, 1);
      expect(await runPass(t.deps(), new MasterSession(), t.vg.vgName)).toMatchObject({ committed: true, replayedRecordCount: 1 });
      await expectInvariantsAfterReplay(t.vg, [host], 1);
    } finally {
      await host.close();
      await t.destroy();
    }
  });

  test('a pass that starts from its own last commit while a host was removed and re-added at the same extents since re-reads the VG instead of failing on the new ring', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 2, quantumExtents: 32, lowWaterExtents: 4 });
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    // A session that opens each journal afresh, as one does for a journal it has no reader of yet.
    const session = new MasterSession();
    // The removal and re-add take longer than a commit is trusted for: the pass's clock stands still.
    const frozen = Date.now();
    const deps = { ...t.deps(), nowMs: () => frozen };
    try {
      await host.applyGrants();
      await host.allocate(t.thinLvs[0]!, 1);
      expect(await runPass(deps, session, t.vg.vgName)).toMatchObject({ committed: true });
      const ringOf = async () => ringLocation(await readVgMetadata(t.vg.lvm, t.vg.vgName), hostLvNames('hostB').journal);
      const before = await ringOf();
      await removeHost(t.deps(), t.vg.vgName, 'hostB');
      await addHost(t.deps(), t.vg.vgName, 'hostB');
      const after = await ringOf();
      // The case that matters: another ring where the cached metadata says hostB's is.
      expect(after.ringId).not.toBe(before.ringId);
      expect(after.offsetBytes).toBe(before.offsetBytes);
      await host.allocate(t.thinLvs[0]!, 1);
      expect(await runPass(deps, session, t.vg.vgName)).toMatchObject({ committed: true, replayedRecordCount: 1 });
      await expectInvariantsAfterReplay(t.vg, [host], 1);
    } finally {
      await host.close();
      await t.destroy();
    }
  });

  test('a pass right after its own commit starts from the metadata it read back; a change made since is never lost, and a pass with nothing to commit reads the VG', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 2, quantumExtents: 32, lowWaterExtents: 4 });
    const host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    const session = new MasterSession({ keepJournalsOpen: true });
    try {
      await host.applyGrants();
      await host.allocate(t.thinLvs[0]!, 1);
      const first = await runPass(t.deps(), session, t.vg.vgName);
      expect(first.committed).toBe(true);
      // An operator's command lands between two passes, within the cache's life.
      await t.vg.lvm.run('lvchange', ['--addtag', 'by_hand', `${t.vg.vgName}/${t.thinLvs[1]}`]);
      const afterHand = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(afterHand.seqno).toBe(first.seqnoAfter + 1);
      // Nothing to replay: the pass must not trust the cached metadata (it reads, sees the new seqno).
      const idle = await runPass(t.deps(), session, t.vg.vgName);
      expect(idle).toMatchObject({ committed: false, seqnoBefore: afterHand.seqno });
      // Something to replay on a cache made stale again: the commit is refused, re-read, applied once.
      await host.allocate(t.thinLvs[0]!, 1);
      const second = await runPass(t.deps(), session, t.vg.vgName);
      await t.vg.lvm.run('lvchange', ['--addtag', 'by_hand_2', `${t.vg.vgName}/${t.thinLvs[1]}`]);
      await host.allocate(t.thinLvs[0]!, 1);
      const third = await runPass(t.deps(), session, t.vg.vgName);
      expect(third).toMatchObject({ committed: true, replayedRecordCount: 1, seqnoBefore: second.seqnoAfter + 1 });
      const after = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      expect(after.lvs.find((lv) => lv.name === t.thinLvs[1])?.tags).toEqual(expect.arrayContaining(['by_hand', 'by_hand_2']));
      await expectInvariantsAfterReplay(t.vg, [host], 1);
    } finally {
      await session.close();
      await host.close();
      await t.destroy();
    }
  });

  test('a daemon session keeps each journal reader open across passes and still applies every record once', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 4, quantumExtents: 64, lowWaterExtents: 4 });
    const hosts = [await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA'), await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostB')];
    const opened: string[] = [];
    const base = t.deps();
    const deps = { ...base, regions: { open: (location: RingLocation) => (opened.push(location.ringId), base.regions.open(location)) } };
    const session = new MasterSession({ keepJournalsOpen: true });
    try {
      for (const host of hosts) await host.applyGrants();
      const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const journalIds = new Set(['hostA', 'hostB'].map((h) => ringLocation(vg, hostLvNames(h).journal).ringId));
      let replayed = 0;
      for (let round = 0; round < 5; round++) {
        // Host h holds disks h and h + 2.
        for (const [h, host] of hosts.entries()) for (let i = 0; i < 3; i++) await host.allocate(t.thinLvs[h + 2 * ((i + round) % 2)]!, 1);
        const pass = await runPass(deps, session, t.vg.vgName);
        replayed += pass.replayedRecordCount;
        for (const host of hosts) await host.applyGrants();
      }
      expect(replayed).toBe(5 * 2 * 3);
      // Each journal was opened once, in the first pass; later passes reused the readers.
      expect(opened.filter((id) => journalIds.has(id)).sort()).toEqual([...journalIds].sort());
      await expectInvariantsAfterReplay(t.vg, hosts, 1);

      // A failed pass drops the kept readers; the next one opens them again and goes on.
      const failing = { ...deps, faults: { hit: async (point: string) => { if (point === 'master.afterCommit') throw new Error('injected'); } } };
      await hosts[0]!.allocate(t.thinLvs[0]!, 1);
      await expect(runPass(failing, session, t.vg.vgName)).rejects.toThrow('injected');
      opened.length = 0;
      const retry = await runPass(deps, session, t.vg.vgName);
      expect(opened.filter((id) => journalIds.has(id)).length).toBe(2);
      expect(retry.committed).toBe(false); // the failed pass had committed; only the consume was left
      for (const host of hosts) await host.applyGrants();
      await expectInvariantsAfterReplay(t.vg, hosts, 1);
    } finally {
      await session.close();
      for (const host of hosts) await host.close();
      await t.destroy();
    }
  });

  test('two masters on one VG never double-apply: on one machine the second is refused, from two they serialise on the seqno', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 3, quantumExtents: 64, lowWaterExtents: 8 });
    const hosts = [await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA'), await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostB')];
    try {
      for (const host of hosts) await host.applyGrants();
      const once = (runDir: string) => runCli(['master', t.vg.vgName, '--once', '--no-history', '--run-dir', runDir, ...t.cliArgs()]);
      // The master lock is a fixed path (/run/lock/thinlv), so "another machine" is a mount
      // namespace with its own tmpfs there; lvm's lock directory stays shared, as before.
      const onceOnAnotherMachine = async () => {
        const script = 'mkdir -p /run/lock/thinlv && mount -t tmpfs thinlv-other-machine /run/lock/thinlv && exec "$@"';
        const args = [CLI_PATH, 'master', t.vg.vgName, '--once', '--no-history', ...t.cliArgs()];
        const result = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', process.execPath, ...args], { reject: false, stdin: 'ignore', timeout: 120_000 });
        return { exitCode: result.exitCode, stderr: String(result.stderr) };
      };

      // Same machine, same lock: the second master is refused while the first runs.
      const daemon = startCli(['master', t.vg.vgName, '--interval-ms', '50', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()]);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const second = await runCli(['master', t.vg.vgName, '--once', '--json', '--no-history', '--run-dir', t.runDir, ...t.cliArgs()]);
      expect(JSON.parse(second.stdout)).toMatchObject({ ok: false, error: { code: 'MASTER_RUNNING' } });
      // SIGTERM lets the pass in flight finish, then the daemon exits 0.
      daemon.kill('SIGTERM');
      const stopped = await daemon;
      expect(stopped.exitCode, String(stopped.stderr)).toBe(0);
      expect(String(stopped.stdout)).toContain('master stopped');

      // Two masters as if on two machines (separate master locks), racing over several rounds of records.
      for (let round = 0; round < 4; round++) {
        // hostA holds disk0 and disk2, hostB disk1.
        for (const [h, host] of hosts.entries()) {
          const mine = t.thinLvs.filter((_, n) => n % 2 === h);
          for (let i = 0; i < 3; i++) await host.allocate(mine[(round + i) % mine.length]!, 1);
        }
        const [a, b] = await Promise.all([once(`${t.runDir}/a`), onceOnAnotherMachine()]);
        expect(a.exitCode, a.stderr).toBe(0);
        expect(b.exitCode, b.stderr).toBe(0);
      }
      const final = await once(`${t.runDir}/a`);
      expect(final.exitCode).toBe(0);
      await expectInvariantsAfterReplay(t.vg, hosts, 1);
    } finally {
      for (const host of hosts) await host.close();
      await t.destroy();
    }
  });

  test('a record claiming extents outside its host pool is rejected, counted, and reported by thinlv check with its reason until cleared', async () => {
    const t = await createThinlvTestVg({ hosts: ['hostA', 'hostB'], thinLvCount: 1, quantumExtents: 32, lowWaterExtents: 4 });
    const hostA = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'hostA');
    try {
      await hostA.applyGrants();
      await hostA.allocate('disk0', 2);
      // hostA claims an extent of hostB's pool.
      const metadata = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const stolen = metadata.lvs.find((lv) => lv.name === 'thinlv_hostB_free')!.segments[0]!;
      const disk0 = metadata.lvs.find((lv) => lv.name === 'disk0')!;
      const badSeq = await hostA.appendRaw({
        kind: 'allocate',
        lv: 'disk0',
        lvUuid: disk0.uuid,
        ranges: toUuidRanges(metadata, [{ pv: stolen.stripes[0]!.pv, firstExtent: stolen.stripes[0]!.firstExtent, extentCount: 1 }]),
        extentCountAfter: 4,
      });
      const pass = await runPass(t.deps(), new MasterSession(), t.vg.vgName);
      expect(pass.rejectedRecordCount).toBe(1);
      const after = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      const thinlv = readThinlvVg(after);
      expect(thinlv.hosts.get('hostA')).toMatchObject({ appliedSeq: badSeq, rejectedCount: 1 });
      // hostB's pool still holds the extent; disk0 got only the honest allocation.
      expect(after.lvs.find((lv) => lv.name === 'thinlv_hostB_free')?.segments.reduce((n, s) => n + s.extentCount, 0)).toBe(32);
      expect(after.lvs.find((lv) => lv.name === 'disk0')?.segments.reduce((n, s) => n + s.extentCount, 0)).toBe(3);
      const check = await runCli(['check', t.vg.vgName, '--json', ...t.cliArgs()]);
      expect(check.exitCode).toBe(1);
      const finding = (JSON.parse(check.stdout) as { findings: { code: string; message: string }[] }).findings.find((f) => f.code === 'REJECTED_RECORDS');
      expect(finding?.message).toMatch(new RegExp(`seq ${badSeq}, because it claimed extents outside the host's pool.*thinlv host clear-rejected`));
      const cleared = await runCli(['host', 'clear-rejected', t.vg.vgName, 'hostA', '--json', ...t.cliArgs()]);
      expect(JSON.parse(cleared.stdout)).toMatchObject({ host: 'hostA', clearedCount: 1 });
      expect((await runCli(['check', t.vg.vgName, ...t.cliArgs()])).exitCode).toBe(0);
    } finally {
      await hostA.close();
      await t.destroy();
    }
  });
});
