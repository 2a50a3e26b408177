// The master's machine as a commit uses it (src/lvm/runLvm.ts's LvmLocal), in memory:
// lvm's local VG lock and the files thinlv hands lvm (`vgcfgbackup -f`, `vgcfgrestore -f`).
// The real ones (commitBatch.ts's machineLocal) took a flock under /run/lock/lvm, which
// every simulator run on the machine shared (two runs waited on each other in real time),
// and made, wrote, read and removed a temporary directory per read and per commit.
//
// The lock is held by a process: one that is still alive when another asks is LOCK_BUSY
// at once (the simulator runs one master operation at a time, so that never happens and
// fails the run if it does; the real lock would wait up to 30 s); a crashed holder's lock
// is free, as the kernel drops a dead process's flock. Files live only inside the scratch
// directory that holds them, and go with it. A file the simulated lvm wrote (vgcfgbackup)
// carries the parse of its text, which lvm holds (simLvm.ts): readVgFile hands it over
// instead of parsing the text again (it is frozen: nobody may change what lvm holds).
// A file a commit wrote carries the VG it was printed from (LvmLocal.writeFile), which the
// simulated vgcfgrestore takes instead of parsing what was just printed (simLvm.ts).

import { ErrorCode, LvmError } from '../../src/errors.js';
import { parseVgMetadata } from '../../src/lvm/metadataText.js';
import type { LvmLocal } from '../../src/lvm/runLvm.js';
import type { VgMetadata } from '../../src/metadata/vgModel.js';
import type { SimProcess } from './simKernel.js';

const SCRATCH_ROOT = '/sim-scratch';

interface SimFile {
  readonly text: string;
  readonly parsed: VgMetadata | undefined;
  readonly printedFrom: VgMetadata | undefined;
}

export class SimLocalFiles {
  private readonly files = new Map<string, SimFile>();
  private readonly openDirs = new Set<string>();
  private readonly lockHolders = new Map<string, SimProcess>();
  private dirSerial = 0;

  /** `proc`'s view: the lock it takes is its own. */
  forProcess(proc: SimProcess): LvmLocal {
    return {
      withVgLock: (vgName, fn) => this.withVgLock(proc, vgName, fn),
      withScratchDir: (fn) => this.withScratchDir(fn),
      writeFile: async (path, text, printedFrom) => this.writeFile(path, text, undefined, printedFrom),
      readFile: async (path) => this.readFile(path),
      readVgFile: async (path) => this.file(path).parsed ?? parseVgMetadata(this.file(path).text),
    };
  }

  private file(path: string): SimFile {
    const file = this.files.get(path);
    if (file === undefined) throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
    return file;
  }

  /** What lvm reads with -f; throws as a missing file would. */
  readFile(path: string): string {
    return this.file(path).text;
  }

  /** The VG the file's text was printed from, when its writer said (a commit's file), else undefined. */
  printedFrom(path: string): VgMetadata | undefined {
    return this.file(path).printedFrom;
  }

  /**
   * A file written with -f, only inside an open scratch directory. `parsed`: the text's
   * parse (lvm's own files: what it holds); `printedFrom`: the VG the writer printed it from.
   */
  writeFile(path: string, text: string, parsed?: VgMetadata, printedFrom?: VgMetadata): void {
    const dir = path.slice(0, path.lastIndexOf('/'));
    if (!this.openDirs.has(dir)) throw Object.assign(new Error(`ENOENT: no such directory, open '${path}'`), { code: 'ENOENT' });
    this.files.set(path, { text, parsed, printedFrom });
  }

  private async withVgLock<T>(proc: SimProcess, vgName: string, fn: () => Promise<T>): Promise<T> {
    const holder = this.lockHolders.get(vgName);
    if (holder !== undefined && holder.alive) {
      throw new LvmError(ErrorCode.lockBusy, `sim: ${proc} asked for VG ${vgName}'s lock while ${holder} holds it`, { vg: vgName });
    }
    this.lockHolders.set(vgName, proc);
    try {
      return await fn();
    } finally {
      if (this.lockHolders.get(vgName) === proc) this.lockHolders.delete(vgName);
    }
  }

  private async withScratchDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
    const dir = `${SCRATCH_ROOT}/${++this.dirSerial}`;
    this.openDirs.add(dir);
    try {
      return await fn(dir);
    } finally {
      this.openDirs.delete(dir);
      for (const path of [...this.files.keys()]) if (path.startsWith(`${dir}/`)) this.files.delete(path);
    }
  }
}
