// The host daemon's start-up, in process on a real VG: it logs each step's time at
// debug level (start-up has a 2 s target, issue 14), and a second daemon for the same
// host, as from another machine, cannot take the journal while the first runs.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { FakeDeviceMapper } from '../../src/dm/fakeDeviceMapper.js';
import { startHostDaemon, type HostDaemonDeps, type RunningHostDaemon } from '../../src/host/hostDaemon.js';
import { fileRegionOpener } from '../../src/rings/ringRegions.js';
import { HostState, openStateDb } from '../../src/state/index.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { createThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const LEASE_RENEW_MS = 100;

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

function daemonDeps(t: Awaited<ReturnType<typeof createThinlvTestVg>>, stateDir: string, lines: LogLine[]): HostDaemonDeps {
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return {
    lvm: t.vg.lvm,
    regions: fileRegionOpener(),
    dm: new FakeDeviceMapper(),
    deviceMapperPresent: false,
    openState: (ringIdentity) => new HostState(openStateDb(join(stateDir, `host-${ringIdentity}.db`))),
    log: pino({ level: 'debug' }, sink),
    nowMs: () => Date.now(),
    sleepMs: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

describe.skipIf(skipReason !== undefined)('host daemon start-up', () => {
  test('logs the time of each start-up step at debug level; a second daemon for the host is refused while the first runs', async () => {
    const t = await createThinlvTestVg({ hosts: ['h1'], thinLvCount: 2, quantumExtents: 20, lowWaterExtents: 2 });
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-host-startup-'));
    const running: RunningHostDaemon[] = [];
    try {
      const lines: LogLine[] = [];
      const options = (name: string) => ({ vg: t.vg.vgName, host: 'h1', socketPath: join(dir, `${name}.sock`), outOfSpaceWaitMs: 1000, leaseRenewMs: LEASE_RENEW_MS, localLockDir: join(dir, `lock-${name}`) });
      const first = await startHostDaemon(daemonDeps(t, join(dir, 'a'), lines), options('a'));
      running.push(first);
      const steps = lines.find((line) => line.msg === 'start-up steps');
      expect(steps, JSON.stringify(lines.map((line) => line.msg))).toBeDefined();
      expect(Object.keys(steps!['phaseMs'] as object)).toEqual(['metadata', 'lease', 'journalWriter', 'state', 'unreplayed', 'grantsReader', 'serve']);
      expect(steps!['totalMs']).toBeGreaterThan(0);
      expect(lines.filter((line) => line.msg === 'start-up step done')).toHaveLength(7);

      // Another machine (its own local lock) starting the same host: the lease refuses it.
      const second = startHostDaemon(daemonDeps(t, join(dir, 'b'), []), options('b'));
      await expect(second).rejects.toMatchObject({ code: 'LEASE_HELD' });
      // The first still serves and writes its journal.
      await first.allocator.extendBy('disk0', 4 * 1024 * 1024);
      expect(first.allocator.status().unreplayedRecordCount).toBeGreaterThan(0);
    } finally {
      for (const daemon of running) await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      await t.destroy();
    }
  });
});
