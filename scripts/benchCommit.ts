// npm run bench:commit
//
// On one loop-backed VG, in one run: the time to apply N changes (N = 1, 100,
// 1,000, 10,000) as ONE batch commit, side by side with separate `lvextend`
// calls on the same VG at the same metadata size. lvextend is timed on a
// sample of 50 calls (fewer for N < 50) right after each batch and
// extrapolated to N calls; the table says so. Prints a table, then one JSON
// line: {"batch10000Ms", "lvextendEachMs", "speedup10000", ...}.

import { performance } from 'node:perf_hooks';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import type { MetadataChange } from '../src/metadata/applyChanges.js';
import { createLoopVg, realLvmUnavailableReason } from '../test/fixtures/loopVg.js';

const BATCH_SIZES = [1, 100, 1_000, 10_000] as const;
const LVEXTEND_SAMPLE = 50;
const TARGET_LV_COUNT = 100;
const LVEXTEND_FIRST_EXTENT = 20_000;

async function main(): Promise<void> {
  const reason = realLvmUnavailableReason();
  if (reason !== undefined) throw new Error(`cannot benchmark: ${reason}`);
  const vg = await createLoopVg({ sizeBytes: 128 * 1024 ** 3, metadataSizeMiB: 128, namePrefix: 'thinlvbench' });
  try {
    const pv = vg.device;
    // Target LVs at the start of the PV; every appended extent lands far from its
    // LV's tail, so each change really adds a segment, as replay of many hosts does.
    await commitBatch(vg.lvm, await readVgMetadata(vg.lvm, vg.vgName), Array.from({ length: TARGET_LV_COUNT }, (_, i) => ({
      kind: 'createLv' as const,
      name: `target${i}`,
      ranges: [{ pv, firstExtent: i, extentCount: 1 }],
    })));
    let nextExtent = TARGET_LV_COUNT + 1000;
    let lvextendCount = 0;
    const rows: { n: number; batchMs: number; segmentsAfter: number; lvextendEachMs: number; lvextendTotalMs: number; speedup: number }[] = [];

    for (const n of BATCH_SIZES) {
      const changes: MetadataChange[] = [];
      for (let i = 0; i < n; i++) {
        changes.push({ kind: 'appendRanges', lv: `target${i % TARGET_LV_COUNT}`, ranges: [{ pv, firstExtent: nextExtent, extentCount: 1 }] });
        nextExtent += 1;
      }
      const base = await readVgMetadata(vg.lvm, vg.vgName);
      const started = performance.now();
      const result = await commitBatch(vg.lvm, base, changes);
      const batchMs = performance.now() - started;
      if (result.seqno !== base.seqno + 1) throw new Error(`batch of ${n} took ${result.seqno - base.seqno} commits`);
      const segmentsAfter = result.metadata.lvs.reduce((sum, lv) => sum + lv.segments.length, 0);

      // The baseline at the same metadata size: one lvm process per change.
      const sample = Math.min(n, LVEXTEND_SAMPLE);
      const sampleStarted = performance.now();
      for (let i = 0; i < sample; i++) {
        // Restricted to a PE range of its own so lvextend never takes the extents batches use.
        await vg.lvm.run('lvextend', ['-l', '+1', `${vg.vgName}/target${lvextendCount++ % TARGET_LV_COUNT}`, `${pv}:${LVEXTEND_FIRST_EXTENT}-${LVEXTEND_FIRST_EXTENT + 2_000}`]);
      }
      const lvextendEachMs = (performance.now() - sampleStarted) / sample;
      const lvextendTotalMs = lvextendEachMs * n;
      rows.push({ n, batchMs, segmentsAfter, lvextendEachMs, lvextendTotalMs, speedup: lvextendTotalMs / batchMs });
    }

    const pad = (s: string, w: number): string => s.padStart(w);
    console.log(`VG ${vg.vgName} on ${vg.device}; lvextend timed on ${LVEXTEND_SAMPLE} calls per row (fewer when N < ${LVEXTEND_SAMPLE}) and extrapolated to N`);
    console.log(`${pad('N', 7)} ${pad('batch ms', 10)} ${pad('segments', 9)} ${pad('lvextend ms/call', 17)} ${pad('N x lvextend ms', 16)} ${pad('speedup', 9)}`);
    for (const r of rows) {
      console.log(
        `${pad(String(r.n), 7)} ${pad(r.batchMs.toFixed(1), 10)} ${pad(String(r.segmentsAfter), 9)} ${pad(r.lvextendEachMs.toFixed(1), 17)} ${pad(r.lvextendTotalMs.toFixed(0), 16)} ${pad(`${r.speedup.toFixed(1)}x`, 9)}`,
      );
    }
    const last = rows[rows.length - 1]!;
    const round = (x: number): number => Math.round(x * 10) / 10;
    console.log(
      JSON.stringify({
        batch1Ms: round(rows[0]!.batchMs),
        batch100Ms: round(rows[1]!.batchMs),
        batch1000Ms: round(rows[2]!.batchMs),
        batch10000Ms: round(last.batchMs),
        lvextendEachMs: round(last.lvextendEachMs),
        lvextend10000EstimatedMs: Math.round(last.lvextendTotalMs),
        speedup10000: round(last.speedup),
        speedup1000: round(rows[2]!.speedup),
        lvextendSample: LVEXTEND_SAMPLE,
      }),
    );
  } finally {
    await vg.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
