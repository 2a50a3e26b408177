import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { runProcess } from '../../src/runProcess.js';

const base = { env: process.env, timeoutMs: 10_000, maxOutputBytes: 1024 * 1024 };

describe('runProcess', () => {
  test('collects stdout, stderr and the exit code; input goes to stdin, which is closed otherwise', async () => {
    const result = await runProcess('sh', ['-c', 'cat; echo err >&2; exit 7'], { ...base, input: 'hello\n' });
    expect(result).toMatchObject({ stdout: 'hello\n', stderr: 'err\n', exitCode: 7, failure: undefined });
    // No input: stdin is closed, so a program reading it sees end of file at once.
    expect(await runProcess('sh', ['-c', 'cat; echo done'], base)).toMatchObject({ stdout: 'done\n', exitCode: 0 });
  });

  test('a missing program, a time limit passed, a cancel and too much output each say so', async () => {
    expect(await runProcess('/nonexistent/thinlv-no-such-program', [], base)).toMatchObject({ failure: 'missing', exitCode: null });
    const started = Date.now();
    expect(await runProcess('sleep', ['30'], { ...base, timeoutMs: 100 })).toMatchObject({ failure: 'timeout', exitCode: null });
    expect(Date.now() - started).toBeLessThan(5_000);
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    expect(await runProcess('sleep', ['30'], { ...base, signal: controller.signal })).toMatchObject({ failure: 'cancelled' });
    expect(await runProcess('sh', ['-c', 'head -c 100000 /dev/zero'], { ...base, maxOutputBytes: 1000 })).toMatchObject({ failure: 'output-too-large' });
  });

  test('the environment given is the one the program sees', async () => {
    expect((await runProcess('sh', ['-c', 'echo "$THINLV_PROBE"'], { ...base, env: { PATH: process.env['PATH'], THINLV_PROBE: 'x1' } })).stdout).toBe('x1\n');
  });

  test("stdout to a file: the same answer, too much output still refused", async () => {
    const file = { ...base, stdoutTo: 'file' as const };
    expect(await runProcess('sh', ['-c', 'cat; echo err >&2; exit 7'], { ...file, input: 'hello\n' })).toMatchObject({ stdout: 'hello\n', stderr: 'err\n', exitCode: 7, failure: undefined });
    const big = await runProcess('sh', ['-c', 'head -c 3000000 /dev/zero'], { ...file, maxOutputBytes: 4_000_000 });
    expect(big.stdout.length).toBe(3_000_000);
    expect(await runProcess('sh', ['-c', 'head -c 100000 /dev/zero'], { ...file, maxOutputBytes: 1000 })).toMatchObject({ failure: 'output-too-large' });
    expect(await runProcess('/nonexistent/thinlv-no-such-program', [], file)).toMatchObject({ failure: 'missing', exitCode: null });
  });

  test('stdout to a file: a program printing more than a pipe holds finishes while this process is busy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-runprocess-'));
    try {
      // The program prints 1 MB, then leaves a mark. This process does not turn its event loop until the mark is there.
      const printsThenMarks = (mark: string): string[] => ['-c', `head -c 1000000 /dev/zero; touch ${mark}`];
      const markAppears = (mark: string, withinMs: number): boolean => {
        const until = Date.now() + withinMs;
        while (Date.now() < until) if (existsSync(mark)) return true;
        return false;
      };
      const toFile = runProcess('sh', printsThenMarks(join(dir, 'file')), { ...base, maxOutputBytes: 2_000_000, stdoutTo: 'file' });
      expect(markAppears(join(dir, 'file'), 10_000)).toBe(true);
      expect((await toFile).stdout.length).toBe(1_000_000);
      // Through a pipe the program waits for this process to read: no mark while it is busy.
      const toPipe = runProcess('sh', printsThenMarks(join(dir, 'pipe')), { ...base, maxOutputBytes: 2_000_000 });
      expect(markAppears(join(dir, 'pipe'), 500)).toBe(false);
      expect((await toPipe).stdout.length).toBe(1_000_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
