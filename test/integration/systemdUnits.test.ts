// The systemd units in contrib/systemd: `systemd-analyze verify` accepts them without a
// word (skipped, with the reason printed, where systemd-analyze is missing), and the
// command line each one runs, with its environment expanded as systemd would, is a
// thinlv command that the built CLI knows, options included.

import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { describe, expect, test } from 'vitest';
import { CLI_PATH, runCli } from '../fixtures/runCli.js';

const UNIT_DIR = fileURLToPath(new URL('../../contrib/systemd/', import.meta.url));
/** Where README.md's install steps put the command, and so what the units run. */
const INSTALLED_COMMAND = '/usr/local/bin/thinlv';
const VG = 'vg-data';

interface UnitUnderTest {
  readonly template: string;
  readonly usageLine: string;
  /** The arguments with the units' default environment (no environment files). */
  readonly defaultArgs: readonly string[];
  /** Environment files as README.md shows them. */
  readonly sampleEnvironment: Readonly<Record<string, string>>;
}

const UNITS: readonly UnitUnderTest[] = [
  {
    template: 'thinlv-master@.service',
    usageLine: 'thinlv master <vg>',
    defaultArgs: ['master', VG],
    sampleEnvironment: { THINLV_OPTIONS: '--devices /dev/mapper/mpatha', THINLV_MASTER_OPTIONS: '--interval-ms 2000 --poll-ms 50 --log-level info' },
  },
  {
    template: 'thinlv-host@.service',
    usageLine: 'thinlv host <action> <vg> <host>',
    defaultArgs: ['host', 'run', VG, hostname()],
    sampleEnvironment: { THINLV_OPTIONS: '--devices /dev/mapper/mpatha', THINLV_HOST: 'xen1', THINLV_HOST_OPTIONS: '--out-of-space-wait-ms 10000 --lease-interval-ms 1000' },
  },
];

const unitText = (template: string): string => readFileSync(join(UNIT_DIR, template), 'utf8');
const instanceName = (template: string): string => template.replace('@.service', `@${VG}.service`);

function systemdAnalyzeUnavailableReason(): string | undefined {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (error) {
    return `systemd-analyze cannot run here (${error instanceof Error ? error.message : String(error)}); the units are not verified`;
  }
}

/** The value of each `Key=` line of the unit, in order, with %i, %H and %% expanded. */
function unitSettings(text: string, key: string): string[] {
  const values: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith(`${key}=`)) values.push(expandSpecifiers(line.slice(key.length + 1)));
  }
  return values;
}

const expandSpecifiers = (value: string): string =>
  value.replace(/%(.)/g, (_, specifier: string) => {
    if (specifier === 'i') return VG;
    if (specifier === 'H') return hostname();
    if (specifier === '%') return '%';
    throw new Error(`the test does not expand %${specifier}; add it`);
  });

/**
 * ExecStart's words as systemd passes them: `${NAME}` is one word, a word `$NAME` is the
 * value split at whitespace (none when empty). Environment= sets the defaults; `environment`
 * stands for the EnvironmentFile= lines, which override them.
 */
function execStartWords(text: string, environment: Readonly<Record<string, string>>): string[] {
  const variables = new Map<string, string>();
  for (const assignment of unitSettings(text, 'Environment')) {
    const [name, ...value] = assignment.split('=');
    variables.set(name!, value.join('='));
  }
  for (const [name, value] of Object.entries(environment)) variables.set(name, value);
  const execStarts = unitSettings(text, 'ExecStart');
  expect(execStarts).toHaveLength(1);
  expect(execStarts[0], 'the units use no quoting, so that this expansion is the one systemd does').not.toMatch(/["'\\]/);
  const lookup = (name: string): string => {
    const value = variables.get(name);
    if (value === undefined) throw new Error(`ExecStart uses $${name}, which has no default Environment= line`);
    return value;
  };
  return execStarts[0]!.split(/\s+/).filter((word) => word.length > 0).flatMap((word) => {
    const whole = /^\$([A-Z_]+)$/.exec(word);
    if (whole) return lookup(whole[1]!).split(/\s+/).filter((w) => w.length > 0);
    return [word.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => lookup(name))];
  });
}

describe('systemd units', () => {
  test('systemd-analyze verify accepts both units without a warning', async ({ skip }) => {
    const reason = systemdAnalyzeUnavailableReason();
    if (reason !== undefined) {
      console.warn(`SKIPPING systemd-analyze verify: ${reason}`);
      skip(reason);
    }
    const dir = mkdtempSync(join(tmpdir(), 'thinlv-units-'));
    try {
      // verify checks that ExecStart's program exists: a wrapper stands in for the installed command.
      const command = join(dir, 'thinlv');
      writeFileSync(command, `#!/bin/sh\nexec "${process.execPath}" "${CLI_PATH}" "$@"\n`);
      chmodSync(command, 0o755);
      for (const { template } of UNITS) {
        const text = unitText(template);
        expect(text).toContain(`ExecStart=${INSTALLED_COMMAND} `);
        writeFileSync(join(dir, template), text.replaceAll(INSTALLED_COMMAND, command));
      }
      // A copy with a mistake in it shows that verify reads our files and that the filter below sees its complaint.
      writeFileSync(join(dir, 'broken@.service'), `${unitText(UNITS[0]!.template).replaceAll(INSTALLED_COMMAND, command)}\n[Service]\nKillMode=sometimes\n`);

      const broken = await execa('systemd-analyze', ['verify', join(dir, 'broken@vg0.service')], { reject: false, cwd: dir });
      expect(`${broken.stdout}\n${broken.stderr}`).toMatch(/broken@\.service:\d+: Failed to parse kill mode/);

      const result = await execa('systemd-analyze', ['verify', ...UNITS.map(({ template }) => join(dir, instanceName(template)))], { reject: false, cwd: dir });
      const lines = `${result.stdout}\n${result.stderr}`.split('\n').filter((line) => line.trim().length > 0);
      // Complaints about other units on this machine (a dependency's own file) are not ours to judge.
      const ours = lines.filter((line) => line.includes(dir) || line.includes('thinlv'));
      for (const line of lines.filter((l) => !ours.includes(l))) console.log(`systemd-analyze verify, about another unit (ignored): ${line}`);
      expect(ours).toEqual([]);
      expect(result.exitCode, lines.join('\n')).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test.each(UNITS)("$template runs a command the CLI knows, with its defaults and with README's environment files", async (unit) => {
    const text = unitText(unit.template);
    const defaults = execStartWords(text, {});
    expect(defaults).toEqual([INSTALLED_COMMAND, ...unit.defaultArgs]);
    const configured = execStartWords(text, unit.sampleEnvironment);
    for (const words of [defaults, configured]) {
      const args = words.slice(1);
      // --help skips yargs' checks, so the test checks what it shows instead: this command's
      // usage (an unknown command shows the top level's), and every option given.
      const help = await runCli([...args, '--help']);
      expect(help.exitCode, help.stderr).toBe(0);
      expect(help.stdout.split('\n')[0]).toBe(unit.usageLine);
      for (const option of args.filter((a) => a.startsWith('--'))) expect(help.stdout, `${unit.template}: ${option}`).toMatch(new RegExp(`^\\s+${option}\\s`, 'm'));
      for (const value of args.filter((a) => ['run'].includes(a))) expect(help.stdout).toContain(`"${value}"`);
    }
  });

  test('the host unit never restarts a daemon that exited 3 (LEASE_LOST, HOST_DAEMON_RUNNING) or 2; neither unit restarts a clean stop', () => {
    const host = unitText('thinlv-host@.service');
    const master = unitText('thinlv-master@.service');
    for (const text of [host, master]) {
      expect(unitSettings(text, 'Restart')).toEqual(['on-failure']);
      expect(unitSettings(text, 'KillMode')).toEqual(['mixed']);
      expect(unitSettings(text, 'StateDirectory')).toEqual(['thinlv']);
    }
    expect(unitSettings(host, 'RestartPreventExitStatus')).toEqual(['2 3']);
    expect(unitSettings(master, 'RestartPreventExitStatus')).toEqual(['2']);
    // Instances share /run/thinlv: stopping one must not delete the others' sockets.
    expect(unitSettings(host, 'RuntimeDirectory')).toEqual(['thinlv']);
    expect(unitSettings(host, 'RuntimeDirectoryPreserve')).toEqual(['yes']);
    expect(unitSettings(master, 'RuntimeDirectory')).toEqual([]);
  });
});
