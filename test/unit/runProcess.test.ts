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
});
