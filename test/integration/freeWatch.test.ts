// `thinlv free VG --watch SECONDS` on real LVM on a loop device, run as an operator would
// (the built CLI): a stream of NDJSON reports that follows the VG as a host journals
// allocations, a read error that is reported while the watch goes on, SIGINT and SIGTERM
// ending it with 0, the human layout on a pipe, and the usage errors.

import type { Readable } from 'node:stream';
import { describe, expect, test } from 'vitest';
import type { FreeSpaceReport } from '../../src/report/freeSpace.js';
import { realLvmUnavailableReason } from '../fixtures/loopVg.js';
import { runCli, startCli } from '../fixtures/runCli.js';
import { AllocatorHost } from '../fixtures/allocatorHost.js';
import { createThinlvTestVg, type ThinlvTestVg } from '../fixtures/thinlvVg.js';

const skipReason = realLvmUnavailableReason();
const GIB = 1024 ** 3;
/** A report every second; reading one on a loaded machine may take a few. */
const LINE_WAIT_MS = 30_000;
/** Reports to wait through for one that shows a change. */
const MAX_REPORTS_FOR_A_CHANGE = 10;

/** Complete lines of `stream` as they arrive; next() waits for the next one, up to `LINE_WAIT_MS`. */
function lineReader(stream: Readable) {
  const lines: string[] = [];
  let partial = '';
  let wake: (() => void) | undefined;
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    wake?.();
  });
  let read = 0;
  return {
    /** Everything received so far, the incomplete last line too. */
    text: () => lines.map((line) => `${line}\n`).join('') + partial,
    async next(): Promise<string> {
      const deadline = Date.now() + LINE_WAIT_MS;
      while (read >= lines.length) {
        if (Date.now() > deadline) throw new Error(`no line within ${LINE_WAIT_MS} ms; so far:\n${lines.join('\n')}${partial}`);
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
      }
      return lines[read++]!;
    },
  };
}

async function waitFor(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + LINE_WAIT_MS;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const smallVg = (): Promise<ThinlvTestVg> => createThinlvTestVg({ sizeBytes: 2 * GIB, hosts: ['h1', 'h2'], thinLvCount: 2, quantumExtents: 16, lowWaterExtents: 8 });

describe.skipIf(skipReason !== undefined)('thinlv free --watch on a real VG', () => {
  test('--json prints one report per line, follows allocations a host journals, reports a read error and keeps watching, and SIGINT ends it with 0', async () => {
    const t = await smallVg();
    let host: AllocatorHost | undefined;
    const watch = startCli(['free', t.vg.vgName, '--watch', '1', '--json', ...t.cliArgs()]);
    try {
      const stdout = lineReader(watch.stdout);
      const stderr = lineReader(watch.stderr);
      const first = JSON.parse(await stdout.next()) as FreeSpaceReport;
      expect(first).toMatchObject({ vg: t.vg.vgName, thinLvCount: 2, unreplayedExtents: 0, level: 'ok' });
      expect(first.hosts.map((h) => h.host)).toEqual(['h1', 'h2']);
      const second = JSON.parse(await stdout.next()) as FreeSpaceReport;
      expect(second).toMatchObject({ vg: t.vg.vgName, extentCount: first.extentCount, freeExtents: first.freeExtents });

      // h1 journals an allocation of 3 extents (to disk0, which it holds): a later report shows it.
      host = await AllocatorHost.open(t.vg.lvm, t.vg.vgName, 'h1');
      await host.applyGrants();
      await host.allocate('disk0', 3);
      await host.close();
      host = undefined;
      let changed: FreeSpaceReport | undefined;
      for (let n = 0; n < MAX_REPORTS_FOR_A_CHANGE && changed === undefined; n++) {
        const report = JSON.parse(await stdout.next()) as FreeSpaceReport;
        if (report.unreplayedExtents === 3) changed = report;
      }
      expect(changed, `no report showed h1's 3 journaled extents within ${MAX_REPORTS_FOR_A_CHANGE} reports`).toBeDefined();
      expect(changed!.hosts[0]).toMatchObject({ host: 'h1', unreplayedExtents: 3, unreplayedRecords: 1 });

      // The VG goes away under the watch: each report now fails, on stderr, and the watch goes on.
      await t.vg.lvm.run('vgremove', ['--force', '--yes', t.vg.vgName]);
      const error = await stderr.next();
      expect(error).toMatch(/^thinlv: .*not found.*\(still watching, every 1 s\)$/);
      await stderr.next();

      watch.kill('SIGINT');
      const result = await watch;
      expect(result.exitCode, stderr.text()).toBe(0);
      // stdout holds reports and nothing else, one JSON document per line.
      const lines = String(result.stdout).split('\n').filter((line) => line.length > 0);
      expect(lines.length).toBeGreaterThanOrEqual(3);
      for (const line of lines) expect((JSON.parse(line) as FreeSpaceReport).vg).toBe(t.vg.vgName);
      console.log(`thinlv free --watch 1 --json, the first report:\n${lines[0]}`);
    } finally {
      watch.kill('SIGKILL');
      await host?.close();
      await t.destroy();
    }
  });

  test('on a pipe, reports follow each other after a blank line and a timestamped header; SIGTERM ends it with 0', async () => {
    const t = await smallVg();
    const watch = startCli(['free', t.vg.vgName, '--watch', '1', ...t.cliArgs()]);
    try {
      const stdout = lineReader(watch.stdout);
      const headers: string[] = [];
      while (headers.length < 3) {
        const line = await stdout.next();
        if (line.startsWith('Every ')) headers.push(line);
      }
      watch.kill('SIGTERM');
      const result = await watch;
      expect(result.exitCode, String(result.stderr)).toBe(0);
      for (const header of headers) expect(header).toMatch(new RegExp(`^Every 1 s: thinlv free ${t.vg.vgName} at \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$`));
      const text = String(result.stdout);
      expect(text.startsWith(`Every 1 s: thinlv free ${t.vg.vgName} at `)).toBe(true);
      expect(text).toContain(`\n\nEvery 1 s: thinlv free ${t.vg.vgName} at `);
      expect(text).toMatch(new RegExp(`\\nVG ${t.vg.vgName}: .* extents of 4\\.00 MiB\\n`));
      // Not a terminal: no screen clearing, no colour.
      expect(text).not.toContain('\u001b');
      console.log(`thinlv free --watch 1 on a pipe, the first two reports:\n${text.split('\n\n').slice(0, 4).join('\n\n')}`);
    } finally {
      watch.kill('SIGKILL');
      await t.destroy();
    }
  });

  test('bad --watch values and --watch with --check are usage errors; a VG that does not exist ends the watch at once', async () => {
    const t = await smallVg();
    try {
      for (const value of ['0', '0.5', '86401', 'soon', '']) {
        const bad = await runCli(['free', t.vg.vgName, '--watch', value, '--json', ...t.cliArgs()]);
        expect(bad.exitCode, `--watch ${JSON.stringify(value)}`).toBe(2);
        expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, error: { code: 'INVALID_ARGUMENT', message: expect.stringContaining('--watch must be a number of seconds from 1 to 86400') } });
      }
      const bare = await runCli(['free', t.vg.vgName, '--watch', ...t.cliArgs()]);
      expect(bare.exitCode).toBe(2);
      expect(bare.stderr).toMatch(/^thinlv: --watch must be/);

      const withCheck = await runCli(['free', t.vg.vgName, '--watch', '5', '--check', ...t.cliArgs()]);
      expect(withCheck.exitCode).toBe(2);
      expect(withCheck.stderr).toMatch(/^thinlv: --watch and --check cannot be used together/);

      const missing = await runCli(['free', 'thinlv_no_such_vg', '--watch', '1', '--json', ...t.cliArgs()]);
      expect(missing.exitCode).toBe(3);
      expect(JSON.parse(missing.stdout)).toMatchObject({ ok: false, error: { code: 'VG_NOT_FOUND' } });
    } finally {
      await t.destroy();
    }
  });
});
