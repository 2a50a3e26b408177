// A writer process and a reader process share one ring on a loop device, as a host
// and the master share a ring LV on a SAN LUN: nothing but the device between them.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRing, openFileRegion, openRingReader } from '../index.js';
import { attachLoopDevice, loopDeviceProblem, type LoopDevice } from '../support/loopDevice.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const WRITER_JS = path.join(REPO_ROOT, 'dist', 'journal', 'test', 'ringWriterProcess.js');
const READER_JS = path.join(REPO_ROOT, 'dist', 'journal', 'test', 'ringReaderProcess.js');
const RECORD_COUNT = 12_000;
const RING_OFFSET_BYTES = 1024 * 1024;
// Small on purpose: about 230 one-block records per lap, so 12,000 records wrap the
// ring some 50 times and the writer waits on a full ring.
const RING_BYTES = 1024 * 1024;

const loopProblem = loopDeviceProblem();
if (loopProblem !== undefined) {
  console.warn(`SKIPPING two-process loop-device test: ${loopProblem}`);
}

function runChild(script: string, args: readonly string[]): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${path.basename(script)} exited with ${code}: ${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>);
    });
  });
}

describe.skipIf(loopProblem !== undefined)('a writer process and a reader process on one loop device', () => {
  let loop: LoopDevice | undefined;

  beforeAll(() => {
    for (const script of [WRITER_JS, READER_JS]) {
      if (!fs.existsSync(script)) {
        throw new Error(`${script} is missing: this test runs the compiled child processes; run \`npm run build\` (or \`npm test\`, which builds first)`);
      }
    }
    loop = attachLoopDevice({ sizeBytes: 4 * 1024 * 1024, directIo: true });
  });

  afterAll(() => {
    loop?.detach();
  });

  it(`the reader sees all ${RECORD_COUNT} records the writer appended, in order, byte for byte, while both run`, async () => {
    const device = loop!.devicePath;
    const setup = await openFileRegion(device, { offsetBytes: RING_OFFSET_BYTES, lengthBytes: RING_BYTES });
    expect(setup.mode).toBe('direct');
    const ringId = 'thinlv_loop_journal';
    await createRing(setup, { ringId });
    const args = [device, String(RING_OFFSET_BYTES), String(RING_BYTES), ringId, String(RECORD_COUNT)];
    const [writer, reader] = await Promise.all([runChild(WRITER_JS, args), runChild(READER_JS, args)]);
    console.log(`two-process run: ${JSON.stringify(writer)} ${JSON.stringify(reader)}`);
    expect(writer).toMatchObject({ role: 'writer', appended: RECORD_COUNT, mode: 'direct' });
    expect(reader).toMatchObject({ role: 'reader', read: RECORD_COUNT });
    // The consumer position both processes agreed on is on the device.
    const check = await openRingReader(setup, { ringId });
    expect(check.consumedSeq).toBe(RECORD_COUNT);
    expect((await check.read({ fromSeq: RECORD_COUNT + 1 })).records).toEqual([]);
    await setup.close();
  });
});
