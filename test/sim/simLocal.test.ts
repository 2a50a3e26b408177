// The simulator's lvm lock and scratch files (simLocal.ts): what the commit path relies on.

import { describe, expect, test } from 'vitest';
import { SimLocalFiles } from './simLocal.js';
import { SimProcess } from './simKernel.js';

describe('the simulated lvm lock and scratch files', () => {
  test('a second locker while a live process holds the VG lock is refused with LOCK_BUSY, never left waiting', async () => {
    const local = new SimLocalFiles();
    const first = local.forProcess(new SimProcess('master', 'master', 1));
    const second = local.forProcess(new SimProcess('master2', 'master', 1));
    await first.withVgLock('vg', async () => {
      await expect(second.withVgLock('vg', async () => 'taken')).rejects.toMatchObject({ code: 'LOCK_BUSY' });
    });
    await expect(second.withVgLock('vg', async () => 'taken')).resolves.toBe('taken');
  });

  test("a crashed holder's lock is free, as the kernel drops a dead process's flock", async () => {
    const local = new SimLocalFiles();
    const crashed = new SimProcess('master', 'master', 1);
    const next = local.forProcess(new SimProcess('master', 'master', 2));
    await local.forProcess(crashed).withVgLock('vg', async () => {
      crashed.alive = false;
      await expect(next.withVgLock('vg', async () => 'taken')).resolves.toBe('taken');
    });
  });

  test('files live in their scratch directory and go with it; outside one, a write fails', async () => {
    const local = new SimLocalFiles();
    const files = local.forProcess(new SimProcess('master', 'master', 1));
    let kept = '';
    await files.withScratchDir(async (dir) => {
      kept = `${dir}/vg.txt`;
      await files.writeFile(kept, 'text');
      await expect(files.readFile(kept)).resolves.toBe('text');
    });
    await expect(files.readFile(kept)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(files.writeFile('/elsewhere/vg.txt', 'text')).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
