// contrib/prometheus/thinlv-alerts.yml refers only to metrics thinlv registers: the
// names come from the daemons' own registries, so renaming a metric without the rules
// (or the rules without the code) fails here.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Registry } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { createHostMetrics } from '../../src/metrics/hostMetrics.js';
import { createMasterMetrics } from '../../src/metrics/masterMetrics.js';

const RULES_PATH = fileURLToPath(new URL('../../contrib/prometheus/thinlv-alerts.yml', import.meta.url));

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/** PromQL words that are not metric names (functions and aggregations are told apart by their "("). */
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'on', 'ignoring', 'group_left', 'group_right', 'by', 'without', 'offset', 'inf', 'nan']);

/** The metric names a PromQL expression selects. */
function metricNamesIn(expr: string): string[] {
  const rest = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers (label names, not metrics)
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\b(on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\boffset\s+-?\w+/g, ' ');
  const names: string[] = [];
  for (const match of rest.matchAll(/(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const word = match[2];
    if (word === undefined || match[3] !== undefined || KEYWORDS.has(word.toLowerCase())) continue;
    names.push(word);
  }
  return [...new Set(names)];
}

/** Every series name a registry exposes: a histogram's _bucket, _sum and _count. */
function seriesNames(registry: Registry): string[] {
  return registry.getMetricsAsArray().flatMap((metric) => {
    const { name, type } = metric as unknown as { name: string; type: string };
    return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
  });
}

function registeredNames(): Set<string> {
  return new Set([...seriesNames(createMasterMetrics('vg0', 2000).registry), ...seriesNames(createHostMetrics('vg0', 'h1').registry)]);
}

function loadRules(text = readFileSync(RULES_PATH, 'utf8')): Rule[] {
  const document = parse(text) as { groups: { name: string; rules: Rule[] }[] };
  return document.groups.flatMap((group) => group.rules);
}

/** Each (alert, metric) pair whose metric thinlv does not register. */
function unknownMetrics(rules: readonly Rule[], known: ReadonlySet<string>): string[] {
  return rules.flatMap((rule) => metricNamesIn(rule.expr).filter((name) => !known.has(name)).map((name) => `${rule.alert}: ${name}`));
}

describe('the PromQL metric-name reader', () => {
  test('finds selectors and leaves out functions, keywords, label names, strings, ranges and numbers', () => {
    expect(metricNamesIn('sum by (vg, host) (rate(a_total{code="OUT_OF_SPACE", host=~"h.*"}[5m] offset 1h)) / on(vg) group_left(host) b > bool 1e3 and c unless absent(d) or 0.75')).toEqual([
      'a_total',
      'b',
      'c',
      'd',
    ]);
    expect(metricNamesIn('time() - max_over_time(x_seconds[1h:1m]) > clamp_min(5 * y, 60)')).toEqual(['x_seconds', 'y']);
  });
});

describe('contrib/prometheus/thinlv-alerts.yml', () => {
  const rules = loadRules();

  test('every metric an expr names is one the master or a host daemon registers', () => {
    const known = registeredNames();
    expect(known.size).toBeGreaterThan(20);
    expect(unknownMetrics(rules, known)).toEqual([]);
    for (const rule of rules) expect(metricNamesIn(rule.expr).length, rule.alert).toBeGreaterThan(0);
  });

  test('a rule naming a metric thinlv does not have is caught', () => {
    const renamed = readFileSync(RULES_PATH, 'utf8').replace('thinlv_host_pool_extents == 0', 'thinlv_host_pool_extent_count == 0');
    expect(unknownMetrics(loadRules(renamed), registeredNames())).toEqual(['ThinlvHostPoolEmpty: thinlv_host_pool_extent_count']);
  });

  test('it has the alerts the issue asks for, each with a severity and a summary', () => {
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['ThinlvVgCommittedWarning', 'ThinlvVgCommittedCritical', 'ThinlvMasterNotPassing', 'ThinlvHostPoolEmpty']));
    for (const rule of rules) {
      expect(['warning', 'critical'], rule.alert).toContain(rule.labels['severity']);
      expect(rule.annotations['summary'], rule.alert).toMatch(/\S/);
      if (rule.for !== undefined) expect(rule.for, rule.alert).toMatch(/^\d+[smhd]$/);
    }
    const byName = new Map(rules.map((r) => [r.alert, r]));
    // The committed share is compared with the VG's own levels, not fixed numbers.
    expect(metricNamesIn(byName.get('ThinlvVgCommittedWarning')!.expr)).toEqual(expect.arrayContaining(['thinlv_vg_committed_extents', 'thinlv_vg_extents', 'thinlv_vg_alert_warning_ratio', 'thinlv_vg_alert_critical_ratio']));
    expect(metricNamesIn(byName.get('ThinlvVgCommittedCritical')!.expr)).toEqual(expect.arrayContaining(['thinlv_vg_alert_critical_ratio']));
    expect(metricNamesIn(byName.get('ThinlvMasterNotPassing')!.expr)).toContain('thinlv_master_last_successful_pass_timestamp_seconds');
    expect(metricNamesIn(byName.get('ThinlvHostPoolEmpty')!.expr)).toEqual(expect.arrayContaining(['thinlv_host_pool_extents', 'thinlv_vg_free_extents']));
  });
});
