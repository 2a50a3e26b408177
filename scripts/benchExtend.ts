// npm run bench:extend
//
// On one loop-backed VG, in one run:
//   - extend latency through the host daemon's socket (client send to durable
//     reply) with one client, alternating one by one with a raw aligned 4 KiB
//     O_DIRECT|O_DSYNC write to the same device (inside an LV of the VG made for it);
//   - extend throughput with 64 concurrent clients;
//   - `lvm lvextend` of the same size (one extent) on the same VG, as an operator runs
//     it (stock lvm configuration: it backs up and archives the metadata), median of a
//     sample, twice: on the VG as first made (the benchmark's own ~70 LVs), and after
//     the VG is filled like a pool in service (FILL_LVS thin LVs of FILL_SEGMENTS
//     segments each, interleaved as concurrent thin growth leaves them). lvextend's cost
//     grows with the metadata; an extend through the daemon does not. The headline
//     speedupVsLvextend is on the filled VG; speedupVsLvextendSmallVg is printed beside it.
// The daemon runs as its own process (`thinlv host run`), started after the fill, as on
// a real host. Prints a table, then one JSON line with extendP50Us, extendP99Us,
// rawWriteP99Us, lvextendMedianMs, speedupVsLvextend, extendsPerSecond64.

import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readdirSync, rmSync, write, writeSync } from 'node:fs';
import { createLvmRunner } from '../src/lvm/runLvm.js';
import { DATA_OFFSET_BYTES } from '../journal/index.js';
import { hostLvNames } from '../src/format/thinlvVg.js';
import { ringLocation } from '../src/rings/ringRegions.js';
import { createRequire } from 'node:module';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { commitBatch, readVgMetadata } from '../src/lvm/commitBatch.js';
import { computeFreeExtents } from '../src/metadata/checkLayout.js';
import { SECTOR_BYTES } from '../src/metadata/vgModel.js';
import { MasterSession, runPass } from '../src/master/replayPass.js';
import { createThinlvTestVg } from '../test/fixtures/thinlvVg.js';
import { realLvmUnavailableReason } from '../test/fixtures/loopVg.js';
import { nowUs, percentile, round1 } from './benchStats.js';

const directIo = createRequire(import.meta.url)('@ronomon/direct-io') as typeof import('@ronomon/direct-io');
const CLI_PATH = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

/** Removes the backup and archive files lvm wrote for this benchmark's own VG, and only those. */
function removeLvmArchives(vgName: string): void {
  rmSync(join('/etc/lvm/backup', vgName), { force: true });
  const archiveDir = '/etc/lvm/archive';
  if (!existsSync(archiveDir)) return;
  for (const name of readdirSync(archiveDir)) if (name.startsWith(`${vgName}_`)) rmSync(join(archiveDir, name), { force: true });
}

const spawnCli = (args: readonly string[]) => execa(process.execPath, [CLI_PATH, ...args], { reject: false, stdin: 'ignore' });

const LATENCY_SAMPLES = 1500;
const CONCURRENT_CLIENTS = 64;
const EXTENDS_PER_CLIENT = 35;
const LVEXTEND_SAMPLES = 25;
/** A pool in service: hundreds of VM disks, each grown a few times while others grew too. */
const FILL_LVS = 300;
const FILL_SEGMENTS = 8;
const BENCH_LV_COUNT = CONCURRENT_CLIENTS + 1;
const BLOCK_BYTES = 4096;


/** One persistent connection speaking the daemon's JSON-lines protocol. */
class Client {
  private buffer = '';
  private readonly waiting = new Map<string, (line: Record<string, unknown>) => void>();
  private next = 0;
  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let newline: number;
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        const reply = JSON.parse(this.buffer.slice(0, newline)) as Record<string, unknown>;
        this.buffer = this.buffer.slice(newline + 1);
        this.waiting.get(String(reply['id']))?.(reply);
      }
    });
  }
  static open(path: string): Promise<Client> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new Client(socket)));
      socket.once('error', reject);
    });
  }
  extendBy(lv: string, incrementBytes: number): Promise<Record<string, unknown>> {
    const id = `r${this.next++}`;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, (reply) => {
        this.waiting.delete(id);
        if (reply['ok'] === true) resolve(reply);
        else reject(new Error(JSON.stringify(reply['error'])));
      });
      this.socket.write(`${JSON.stringify({ v: 1, id, op: 'extend', lv, incrementBytes })}\n`);
    });
  }
  close(): void {
    this.socket.end();
  }
}

async function main(): Promise<void> {
  const reason = realLvmUnavailableReason();
  if (reason !== undefined) throw new Error(`cannot benchmark: ${reason}`);
  const totalExtends = LATENCY_SAMPLES + CONCURRENT_CLIENTS * EXTENDS_PER_CLIENT + 100;
  if (totalExtends > 4000) throw new Error('the run must fit the journal unreplayed');
  const t = await createThinlvTestVg({ sizeBytes: 128 * 1024 ** 3, hosts: ['bench'], thinLvCount: 0, quantumExtents: totalExtends, lowWaterExtents: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'thinlv-bench-extend-'));
  let daemon: ReturnType<typeof spawnCli> | undefined;
  let rawFd: number | undefined;
  try {
    // Target LVs, plus one LV whose extent takes the raw writes (so they hit the same device, inside the VG).
    const base = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const run = computeFreeExtents(base).ranges().find((r) => r.extentCount > BENCH_LV_COUNT + 2)!;
    const names = Array.from({ length: BENCH_LV_COUNT }, (_, i) => `bench${i}`);
    await commitBatch(t.vg.lvm, base, [
      ...names.map((name, i) => ({ kind: 'createLv' as const, name, ranges: [{ pv: run.pv, firstExtent: run.firstExtent + i, extentCount: 1 }], activationSkip: true, tags: [`thinlv_virtual_bytes=${1024 ** 4}`, 'thinlv_owner=bench'] })),
      { kind: 'createLv' as const, name: 'rawtarget', ranges: [{ pv: run.pv, firstExtent: run.firstExtent + BENCH_LV_COUNT, extentCount: 1 }] },
    ]);
    await runPass(t.deps(), new MasterSession(), t.vg.vgName);

    // lvextend of one extent, as an operator runs it: lvm's own configuration, with its
    // metadata backup and archive (removed afterwards).
    const stockLvm = createLvmRunner({ devices: [t.vg.device], deviceMapperAvailable: t.vg.deviceMapperAvailable });
    const sampleLvextend = async (): Promise<{ medianMs: number; segmentCount: number; lvCount: number }> => {
      const ms: number[] = [];
      for (let i = 0; i < LVEXTEND_SAMPLES; i++) {
        const start = nowUs();
        await stockLvm.run('lvextend', ['-l', '+1', `${t.vg.vgName}/rawtarget`]);
        ms.push((nowUs() - start) / 1000);
      }
      ms.sort((a, b) => a - b);
      const now = await readVgMetadata(t.vg.lvm, t.vg.vgName);
      return { medianMs: percentile(ms, 0.5), lvCount: now.lvs.length, segmentCount: now.lvs.reduce((n, lv) => n + lv.segments.length, 0) };
    };
    const lvextendSmall = await sampleLvextend();

    // Fill the VG like a pool in service: segment k of disk i sits at k * FILL_LVS + i,
    // so no two segments of one disk touch (as concurrent thin growth leaves them).
    const beforeFill = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const fillRun = computeFreeExtents(beforeFill).ranges().find((r) => r.extentCount >= FILL_LVS * FILL_SEGMENTS)!;
    await commitBatch(t.vg.lvm, beforeFill, Array.from({ length: FILL_LVS }, (_, i) => ({
      kind: 'createLv' as const,
      name: `vdi${i}`,
      ranges: Array.from({ length: FILL_SEGMENTS }, (_, k) => ({ pv: fillRun.pv, firstExtent: fillRun.firstExtent + k * FILL_LVS + i, extentCount: 1 })),
      activationSkip: true,
      tags: [`thinlv_virtual_bytes=${1024 ** 4}`],
    })));
    const vg = await readVgMetadata(t.vg.lvm, t.vg.vgName);
    const extentBytes = vg.extentSizeSectors * SECTOR_BYTES;
    const pv = vg.pvs[0]!;
    const rawOffset = pv.peStartSectors * SECTOR_BYTES + (run.firstExtent + BENCH_LV_COUNT) * extentBytes;

    // No master runs during the measurement: in production it runs on another machine,
    // and this run's ~3,800 records fit the 16 MiB journal (4,094 records) unreplayed.
    // The loop device sits on a sparse file, where the first write to a block also
    // allocates it (a filesystem journal commit under O_DSYNC). A LUN has no such cost,
    // so both the journal's data area and the raw-write extent are written once first.
    const journal = ringLocation(vg, hostLvNames('bench').journal);
    const fill = openSync(t.vg.device, directIo.O_DIRECT | 2 /* O_RDWR */);
    try {
      const zeros = directIo.getAlignedBuffer(1024 * 1024, BLOCK_BYTES).fill(0);
      const preallocate = (offset: number, length: number): void => {
        for (let at = 0; at < length; at += zeros.length) writeSync(fill, zeros, 0, Math.min(zeros.length, length - at), offset + at);
      };
      preallocate(journal.offsetBytes + DATA_OFFSET_BYTES, journal.lengthBytes - DATA_OFFSET_BYTES);
      preallocate(rawOffset, extentBytes);
      fsyncSync(fill);
    } finally {
      closeSync(fill);
    }
    const socketPath = join(dir, 'h.sock');
    daemon = spawnCli(['host', 'run', t.vg.vgName, 'bench', '--socket', socketPath, '--state-dir', dir, '--log-level', 'error', ...t.cliArgs()]);
    for (let i = 0; i < 300 && !existsSync(socketPath); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    if (!existsSync(socketPath)) throw new Error('host daemon did not start');
    await new Promise((resolve) => setTimeout(resolve, 300));

    rawFd = openSync(t.vg.device, directIo.O_DIRECT | directIo.O_DSYNC | 2 /* O_RDWR */);
    const rawBuffer = directIo.getAlignedBuffer(BLOCK_BYTES, BLOCK_BYTES).fill(0x5a);
    // Asynchronous, through libuv's thread pool, as the daemon's journal writes are.
    const rawWrite = (i: number): Promise<void> =>
      new Promise((resolve, reject) =>
        write(rawFd!, rawBuffer, 0, BLOCK_BYTES, rawOffset + (i % (extentBytes / BLOCK_BYTES)) * BLOCK_BYTES, (error) => (error ? reject(error) : resolve())),
      );

    // Latency: one client, alternating with raw writes (which goes first flips every pair).
    const client = await Client.open(socketPath);
    for (let i = 0; i < 50; i++) {
      await client.extendBy(names[0]!, extentBytes);
      await rawWrite(i);
    }
    const extendUs: number[] = [];
    const rawUs: number[] = [];
    const timeRaw = async (i: number) => {
      const start = nowUs();
      await rawWrite(i);
      rawUs.push(nowUs() - start);
    };
    const timeExtend = async () => {
      const start = nowUs();
      await client.extendBy(names[0]!, extentBytes);
      extendUs.push(nowUs() - start);
    };
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      if (i % 2 === 0) {
        await timeRaw(i);
        await timeExtend();
      } else {
        await timeExtend();
        await timeRaw(i);
      }
    }
    client.close();

    // Throughput: 64 clients, each on its own connection and LV.
    const clients = await Promise.all(Array.from({ length: CONCURRENT_CLIENTS }, () => Client.open(socketPath)));
    const started = nowUs();
    await Promise.all(clients.map(async (c, i) => {
      for (let n = 0; n < EXTENDS_PER_CLIENT; n++) await c.extendBy(names[i + 1]!, extentBytes);
    }));
    const seconds = (nowUs() - started) / 1e6;
    for (const c of clients) c.close();
    const extendsPerSecond64 = (CONCURRENT_CLIENTS * EXTENDS_PER_CLIENT) / seconds;

    const lvextendFilled = await sampleLvextend();

    extendUs.sort((a, b) => a - b);
    rawUs.sort((a, b) => a - b);
    const extendP50Us = percentile(extendUs, 0.5);
    const extendP99Us = percentile(extendUs, 0.99);
    const rawWriteP50Us = percentile(rawUs, 0.5);
    const rawWriteP99Us = percentile(rawUs, 0.99);
    const lvextendMedianMs = lvextendFilled.medianMs;
    const summary = {
      extendP50Us: round1(extendP50Us),
      extendP99Us: round1(extendP99Us),
      rawWriteP50Us: round1(rawWriteP50Us),
      rawWriteP99Us: round1(rawWriteP99Us),
      p99BoundUs: round1(2 * rawWriteP99Us + 1000),
      lvextendMedianMs: round1(lvextendMedianMs),
      speedupVsLvextend: round1((lvextendMedianMs * 1000) / extendP50Us),
      extendsPerSecond64: Math.round(extendsPerSecond64),
      lvextendSmallVgMedianMs: round1(lvextendSmall.medianMs),
      speedupVsLvextendSmallVg: round1((lvextendSmall.medianMs * 1000) / extendP50Us),
      vg: {
        small: { lvs: lvextendSmall.lvCount, segments: lvextendSmall.segmentCount },
        filled: { lvs: lvextendFilled.lvCount, segments: lvextendFilled.segmentCount },
      },
      samples: { latency: LATENCY_SAMPLES, clients: CONCURRENT_CLIENTS, extendsPerClient: EXTENDS_PER_CLIENT, lvextend: LVEXTEND_SAMPLES },
      targets: { extendP99UsMax: '2 x rawWriteP99Us + 1000', speedupVsLvextendMin: 100 },
    };
    console.log(`extend benchmark on ${t.vg.device} (VG ${t.vg.vgName}); daemon in its own process; raw writes and extends alternate`);
    const filled = `${lvextendFilled.lvCount} LVs, ${lvextendFilled.segmentCount} segments`;
    const small = `${lvextendSmall.lvCount} LVs, ${lvextendSmall.segmentCount} segments`;
    const rows: [string, string, string, string][] = [
      ['', 'extend via socket', 'raw 4 KiB O_DIRECT|O_DSYNC', 'lvm lvextend (median)'],
      ['p50', `${summary.extendP50Us} us`, `${summary.rawWriteP50Us} us`, `${summary.lvextendMedianMs} ms (${filled})`],
      ['', '', '', `${summary.lvextendSmallVgMedianMs} ms (${small})`],
      ['p99', `${summary.extendP99Us} us (bound ${summary.p99BoundUs} us)`, `${summary.rawWriteP99Us} us`, ''],
      ['64 clients', `${summary.extendsPerSecond64} extends/s`, '', ''],
      ['speedup vs lvextend', `${summary.speedupVsLvextend}x (target >= 100x)`, '', `filled VG; ${summary.speedupVsLvextendSmallVg}x on the small VG`],
    ];
    for (const row of rows) console.log(row.map((cell, i) => cell.padEnd(i === 0 ? 22 : 34)).join(''));
    console.log(JSON.stringify(summary));
  } finally {
    if (rawFd !== undefined) closeSync(rawFd);
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await daemon;
    }
    rmSync(dir, { recursive: true, force: true });
    removeLvmArchives(t.vg.vgName);
    await t.destroy();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
