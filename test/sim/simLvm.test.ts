// The simulated vgcfgrestore (simLvm.ts) takes the VG a commit printed its file from, and
// parses one such file in eight: a text that does not parse back to that VG fails the run.

import { describe, expect, test } from 'vitest';
import { printVgMetadata } from '../../src/lvm/metadataText.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import { SimProcess } from './simKernel.js';
import { initialVgMetadata, SimLvm, UnexpectedLvmCall } from './simLvm.js';

const VG = 'simvg';
const options = { vgName: VG, device: '/dev/simpv0', extentSizeBytes: 4 * 1024 * 1024, peCount: 1000, peStartBytes: 1024 * 1024, metadataAreaBytes: 1024 * 1024 };

/** Restores `lvm`'s own VG `times` times, each file's text printed from the VG and said to be printed from `printedFrom(vg)`. */
async function restore(lvm: SimLvm, times: number, printedFrom: (vg: VgMetadata) => VgMetadata): Promise<void> {
  const files = lvm.local.forProcess(new SimProcess('master', 'master', 1));
  for (let i = 0; i < times; i++) {
    await files.withScratchDir(async (dir) => {
      const vg = lvm.metadata;
      await files.writeFile(`${dir}/vg-next.txt`, printVgMetadata(vg), printedFrom(vg));
      lvm.run('vgcfgrestore', ['--nolocking', '--yes', '-f', `${dir}/vg-next.txt`, VG]);
    });
  }
}

describe('the simulated vgcfgrestore of a commit', () => {
  test('takes the VG the file was printed from, and checks one file in eight against its text', async () => {
    const lvm = new SimLvm(initialVgMetadata(options), options.metadataAreaBytes);
    await restore(lvm, 16, (vg) => vg);
    expect(lvm.metadata.seqno).toBe(17);
    expect(lvm.restoresAsGiven, 'restores parsed and printed back as given').toBe(2);
  });

  test('a text that does not parse back to the VG it was said to be printed from fails within eight restores', async () => {
    const lvm = new SimLvm(initialVgMetadata(options), options.metadataAreaBytes);
    const tagged = (vg: VgMetadata): VgMetadata => ({ ...vg, tags: [...vg.tags, 'printed_from_this'] });
    await restore(lvm, 7, tagged);
    // Until then, what lvm holds is the VG the commit said it printed from.
    expect(lvm.metadata.tags).toContain('printed_from_this');
    await expect(restore(lvm, 1, tagged)).rejects.toThrow(UnexpectedLvmCall);
  });
});
