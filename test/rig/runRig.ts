// `npm run rig`: the rig's runs, one after another, on qemu guests built by
// scripts/rig/build.sh. Exits 1 if any check fails and 2 if the rig cannot run at all;
// it never counts a run it could not make as a pass.
//
//   node dist/test/rig/runRig.js [smoke|e2e|host-kill|master-failover|stock|dm-bench ...]
//   (default: all but dm-bench)

import { rigUnavailableReason, DEFAULT_RIG_DIR } from './rigHarness.js';
import { runRigSmoke, type RigStepResult } from './rigSmoke.js';
import { runRigEndToEnd } from './rigEndToEnd.js';
import { runRigHostKilled } from './rigHostKilled.js';
import { runRigMasterFailover } from './rigMasterFailover.js';
import { runRigStockActivation } from './rigStockActivation.js';
import { runRigDmBench } from './rigDmBench.js';

const STEPS: Record<string, () => Promise<RigStepResult>> = {
  smoke: () => runRigSmoke(),
  e2e: () => runRigEndToEnd(),
  'host-kill': () => runRigHostKilled(),
  'master-failover': () => runRigMasterFailover(),
  stock: () => runRigStockActivation(),
  // Not in the default set: a measurement, not a check (README's rig section has its figures).
  'dm-bench': () => runRigDmBench(),
};
const DEFAULT_STEPS = ['smoke', 'e2e', 'host-kill', 'master-failover', 'stock'];

async function main(): Promise<number> {
  const rigDir = process.env['THINLV_RIG_DIR'] ?? DEFAULT_RIG_DIR;
  const unavailable = rigUnavailableReason(rigDir);
  if (unavailable !== undefined) {
    process.stderr.write(`rig: cannot run: ${unavailable}\n`);
    return 2;
  }
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : DEFAULT_STEPS;
  let failed = 0;
  for (const name of names) {
    const step = STEPS[name];
    if (step === undefined) {
      process.stderr.write(`rig: unknown run "${name}" (known: ${Object.keys(STEPS).join(', ')})\n`);
      return 2;
    }
    const started = Date.now();
    process.stdout.write(`== rig ${name}\n`);
    let result: RigStepResult;
    try {
      result = await step();
    } catch (error) {
      result = { name, failures: [`the run stopped: ${(error as Error).stack ?? String(error)}`], lines: [] };
    }
    for (const line of result.lines) process.stdout.write(`   ${line}\n`);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (result.failures.length === 0) {
      process.stdout.write(`PASS ${result.name} (${seconds} s)\n`);
    } else {
      failed += 1;
      process.stdout.write(`FAIL ${result.name} (${seconds} s): ${result.failures.length} failure(s)\n`);
      for (const failure of result.failures) process.stdout.write(`   - ${failure}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`rig: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
