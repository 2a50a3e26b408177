import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ErrorCode, ThinlvError } from '../../src/errors.js';
import { readThinlvVg } from '../../src/format/thinlvVg.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { masterLockPath, metadataLockPath } from '../../src/cli/masterContext.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const PARALLEL_LVCREATE_COUNT = 40;
/** Time between commits of the stand-in master: about a real master's interval. */
const OTHER_WRITER_INTERVAL_MS = 2_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

type Daemon = ReturnType<typeof startCli>;

/** Resolves once the daemon has printed `text`; rejects if it exits first or takes over `timeoutMs`. */
function waitForOutput(daemon: Daemon, text: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms: ${seen}`)), timeoutMs);
    daemon.stdout!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.includes(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    void daemon.then((result) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited ${String(result.exitCode)} before "${text}": ${String(result.stdout)}${String(result.stderr)}`));
    });
  });
}

/**
 * Commits a VG tag every OTHER_WRITER_INTERVAL_MS until stopped, as a master
 * pass does between a command's read and its commit.
 */
function startOtherWriter(t: ThinlvTestVg): { stop(): Promise<number> } {
  let running = true;
  let commits = 0;
  const loop = (async () => {
    while (running) {
      await sleep(OTHER_WRITER_INTERVAL_MS);
      try {
        const base = await readVgMetadata(t.vg.lvm, t.vg.vgName);
        await commitBatch(t.vg.lvm, base, [{ kind: 'setTag', tag: `testwriter_commit=${commits + 1}`, replacingPrefix: 'testwriter_commit=' }]);
        commits++;
      } catch (error) {
        // A command committed between our read and our commit: the next round tries again.
        if (!(error instanceof ThinlvError && error.code === ErrorCode.staleSeqno)) throw error;
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return commits;
    },
  };
}

describe.skipIf(skipReason !== undefined)('metadata commands and masters on one machine take turns', () => {
  let t: ThinlvTestVg;
  const vgArgs = (): string[] => t.cliArgs();
  beforeAll(async () => {
    t = await createThinlvTestVg({ hosts: ['hostA'], thinLvCount: 0, quantumExtents: 32, lowWaterExtents: 8 });
  });
  afterAll(async () => {
    if (t === undefined) return;
    await t.destroy();
    // Lock files are never unlinked by their holders (see fileLock.ts); the test VG is gone, so these go too.
    for (const path of [metadataLockPath(t.vg.vgName), masterLockPath(t.vg.vgName)]) rmSync(path, { force: true });
  });

  test(`${PARALLEL_LVCREATE_COUNT} lvcreate run at once on one VG all succeed, while another writer commits now and then`, async () => {
    const names = Array.from({ length: PARALLEL_LVCREATE_COUNT }, (_, i) => `par${i}`);
    const otherWriter = startOtherWriter(t);
    const results = await Promise.all(names.map((name) => runCli(['lvcreate', '-n', name, '-V', '1g', t.vg.vgName, '--json', ...vgArgs()])));
    await otherWriter.stop();
    for (const [i, result] of results.entries()) {
      expect(result.exitCode, `${names[i]}: ${result.stdout}${result.stderr}`).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ ok: true, lv: names[i] });
    }
    const thinLvs = readThinlvVg(await readVgMetadata(t.vg.lvm, t.vg.vgName)).thinLvs;
    expect(names.filter((name) => thinLvs.has(name))).toEqual(names);
    expect(new Set(names.map((name) => thinLvs.get(name)!.lv.uuid)).size).toBe(PARALLEL_LVCREATE_COUNT);
    // check proves the extents distinct: no extent in two LVs, allocated plus free equals the VG.
    const check = await runCli(['check', t.vg.vgName, '--json', ...vgArgs()]);
    expect(check.exitCode, check.stdout).toBe(0);
    expect(JSON.parse(check.stdout)).toMatchObject({ ok: true });
    // 40 Node processes starting at once, then 40 commits in turn: slow on a small, loaded machine.
  }, 300_000);

  test('a second master for the VG is refused whatever its --run-dir, naming the pid that holds the lock', async () => {
    const first = startCli(['master', t.vg.vgName, '--interval-ms', '1000', '--no-history', '--run-dir', join(t.runDir, 'a'), ...vgArgs()]);
    try {
      await waitForOutput(first, 'master started');
      const second = startCli(['master', t.vg.vgName, '--interval-ms', '1000', '--no-history', '--json', '--run-dir', join(t.runDir, 'b'), ...vgArgs()]);
      // Today's bug was a second daemon that kept running: give it a bound, then stop it.
      const exited = await Promise.race([second, sleep(20_000).then(() => undefined)]);
      if (exited === undefined) {
        second.kill('SIGTERM');
        await second;
      }
      expect(exited?.exitCode, String(exited?.stdout)).toBe(3);
      const error = JSON.parse(String(exited!.stdout).trim().split('\n').at(-1)!);
      expect(error).toMatchObject({ ok: false, error: { code: 'MASTER_RUNNING', data: { lockPath: masterLockPath(t.vg.vgName), holder: `pid ${first.pid}` } } });
      expect(error.error.message).toContain(`pid ${first.pid}`);
    } finally {
      first.kill('SIGTERM');
      expect((await first).exitCode).toBe(0);
    }
  });
});
