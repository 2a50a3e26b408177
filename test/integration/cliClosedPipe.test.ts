import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EXIT_CLOSED_PIPE } from '../../src/cli/output.js';
import { commitBatch, readVgMetadata } from '../../src/lvm/commitBatch.js';
import { createLoopVg, realLvmUnavailableReason, TEST_LVM_CONFIG, type LoopVg } from '../fixtures/loopVg.js';
import { CLI_PATH, runCli } from '../fixtures/runCli.js';

const skipReason = realLvmUnavailableReason();
/** Linux's default pipe buffer: output beyond it blocks the writer until the reader reads. */
const PIPE_BUFFER_BYTES = 64 * 1024;
const LV_COUNT = 300;
/** A long tag per LV makes even the human listing several pipe buffers long. */
const LONG_TAG = `piped_${'x'.repeat(600)}`;

/**
 * Runs `thinlv ARGS | head -n 1` in bash: a real pipe (Node's own child stdio
 * are socket pairs, whose larger buffers can swallow the whole output). The
 * status is thinlv's, from PIPESTATUS; stderr is thinlv's (head writes none).
 */
async function runCliThroughHead(args: readonly string[]) {
  const result = await execa('bash', ['-c', '"$@" | head -n 1; exit "${PIPESTATUS[0]}"', 'thinlv-through-head', process.execPath, CLI_PATH, ...args], {
    reject: false,
    stdin: 'ignore',
    timeout: 60_000,
  });
  return { firstLine: String(result.stdout), exitCode: result.exitCode, stderr: String(result.stderr) };
}

describe.skipIf(skipReason !== undefined)('a reader that closes stdout early', () => {
  let vg: LoopVg;
  const vgArgs = (): string[] => [...vg.cliDeviceArgs, '--lvm-config', TEST_LVM_CONFIG];
  beforeAll(async () => {
    // Enough output that inspect prints several pipe buffers, so it is still writing when the reader goes.
    vg = await createLoopVg({ sizeBytes: 4 * 1024 ** 3 });
    const base = await readVgMetadata(vg.lvm, vg.vgName);
    await commitBatch(
      vg.lvm,
      base,
      Array.from({ length: LV_COUNT }, (_, i) => ({ kind: 'createLv' as const, name: `lv${i}`, ranges: [{ pv: vg.device, firstExtent: i, extentCount: 1 }], tags: [LONG_TAG] })),
    );
  });
  afterAll(async () => {
    await vg?.destroy();
  });

  test.each([
    ['inspect --json', ['--json']],
    ['inspect', []],
  ])('`thinlv %s VG | head -1` ends quietly, as lvs does (status 141, nothing on stderr)', async (_what, extra) => {
    const full = await runCli(['inspect', vg.vgName, ...extra, ...vgArgs()]);
    expect(full.exitCode, full.stderr).toBe(0);
    expect(full.stdout.length).toBeGreaterThan(2 * PIPE_BUFFER_BYTES);

    const closed = await runCliThroughHead(['inspect', vg.vgName, ...extra, ...vgArgs()]);
    expect(closed.firstLine).toBe(full.stdout.split('\n')[0]);
    expect(closed.stderr).not.toMatch(/EPIPE|Error|at .*\.js:\d+/);
    expect(closed.stderr).toBe('');
    expect(closed.exitCode).toBe(EXIT_CLOSED_PIPE);
  });
});
