// npm run crash -- --minutes N --seed S [--hosts H] [--wipe-host-state]: the real-process crash campaign
// (test/crash/crashCampaign.ts) on a loop-backed VG of its own, as root. Prints the
// seed first, a progress line every few seconds, and one JSON summary line last; exits
// 1 at the first invariant failure (seed and step in the message), 130 on Ctrl-C.
// Everything it made (processes, VG, loop device, files) is removed on every exit.

import { randomInt } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { runCrashCampaign, type CampaignSummary } from '../test/crash/crashCampaign.js';

function prerequisiteMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'npm run crash needs root (it creates a loop device and a volume group)';
  const has = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (!has('lvm')) return 'lvm is not installed: apt-get install lvm2';
  if (!has('losetup')) return 'losetup is not installed: apt-get install mount (util-linux)';
  return undefined;
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { minutes: { type: 'string', default: '5' }, seed: { type: 'string' }, hosts: { type: 'string', default: '3' }, 'wipe-host-state': { type: 'boolean', default: false } } });
  const minutes = Number(values.minutes);
  const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
  const hosts = Number(values.hosts);
  if (!(minutes > 0) || !Number.isSafeInteger(seed) || !Number.isInteger(hosts) || hosts < 1 || hosts > 16) {
    console.error('usage: npm run crash -- --minutes N --seed S [--hosts 1..16] [--wipe-host-state]');
    return 2;
  }
  const missing = prerequisiteMissing();
  if (missing !== undefined) {
    console.error(missing);
    return 2;
  }
  console.log(`seed ${seed} (replay with: npm run crash -- --minutes ${minutes} --seed ${seed} --hosts ${hosts})`);
  const abort = new AbortController();
  const onSignal = (): void => {
    if (abort.signal.aborted) {
      console.log('already stopping: the teardown removes what the campaign made');
      return;
    }
    console.log('interrupted: stopping after this step, then tearing down');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const summary = await runCrashCampaign({ minutes, seed, hosts, signal: abort.signal, wipeHostState: values['wipe-host-state'] });
    console.log(JSON.stringify(summary));
    return abort.signal.aborted ? 130 : 0;
  } catch (error) {
    const summary = (error as { summary?: CampaignSummary }).summary;
    if (summary !== undefined) console.log(JSON.stringify(summary));
    console.error(error instanceof Error ? error.message : String(error));
    return 1;
  }
}

process.exitCode = await main();
