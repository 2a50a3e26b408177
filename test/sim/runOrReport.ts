// One simulator run for a test: a failure becomes a plain Error whose message names the
// seed, the step, the command that reproduces it and the last steps.

import { runSimulation, SimFailure, type SimOptions } from './simulator.js';

export async function runOrReport(options: SimOptions): ReturnType<typeof runSimulation> {
  try {
    return await runSimulation(options);
  } catch (error) {
    if (error instanceof SimFailure) throw new Error(error.message);
    throw error;
  }
}
