// The master daemon's metrics (`thinlv master --metrics-listen`), on a registry of its
// own whose every sample carries the label vg.
//
//   around each pass (timePass)   passes, their duration, the last success, errors by code
//   from what a pass did          commits, records replayed and rejected, replay lag,
//     (passDone)                  grants and the extents they gave, per host
//   from the VG the pass left     the VG's extents, committed, free, reserve, each host's
//                                 pool and the VG's own alert levels: thinlv free's
//                                 figures (src/report/freeSpace.ts), not a second count
//   from the lvm runner           lvm call durations (lvmMetrics.ts)
//
// runPass calls timePass and passDone through MasterDeps.observer (src/master/replayPass.ts).
//
// Everything is computed from what the pass already read: metrics add no I/O.
// README.md ("Metrics") lists every name; the alert rules in contrib/prometheus use them.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { InvariantError } from '../errors.js';
import { readAlertLevels, readThinlvVg } from '../format/thinlvVg.js';
import type { PassObserver } from '../master/replayPass.js';
import { computeFreeSpace, type HostJournal } from '../report/freeSpace.js';
import { errorCodeOf } from './errorCode.js';
import { lvmCallHistogram, type LvmCallHistogram } from './lvmMetrics.js';

type ObservedPass = Parameters<PassObserver['passDone']>[0];

/** A pass is three lvm calls (about 250 ms) plus ring I/O; a slow one on a large VG takes seconds. */
export const PASS_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export interface MasterMetrics extends PassObserver {
  readonly registry: Registry;
  readonly lvmCalls: LvmCallHistogram;
}

export function createMasterMetrics(vg: string, intervalMs: number): MasterMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ vg });
  const errors = new Counter({ name: 'thinlv_master_errors_total', help: 'Failed passes, and VG figures a pass could not compute, by error code', labelNames: ['code'], registers: [registry] });
  const passes = passMetrics(registry, intervalMs);
  const replay = replayMetrics(registry);
  const vgFigures = vgMetrics(registry);
  return {
    registry,
    lvmCalls: lvmCallHistogram(registry),
    async timePass(pass) {
      const endTimer = passes.duration.startTimer();
      try {
        const result = await pass();
        passes.lastSuccess.setToCurrentTime();
        return result;
      } catch (error) {
        errors.inc({ code: errorCodeOf(error) });
        throw error;
      } finally {
        // Counted as it ends, so passes_total is always the duration histogram's count.
        passes.total.inc();
        endTimer();
      }
    },
    passDone(pass) {
      try {
        const hosts = [...readThinlvVg(pass.vg).hosts.keys()];
        replay.update(pass, hosts);
        vgFigures.update(pass, hosts);
      } catch (error) {
        // A broken invariant stops the master as anywhere else. Anything else (an alert-level
        // tag out of range, a bug in this file) leaves the last figures and is counted:
        // metrics never stop a pass that did its work.
        if (error instanceof InvariantError) throw error;
        errors.inc({ code: errorCodeOf(error) });
      }
    },
  };
}

function passMetrics(registry: Registry, intervalMs: number) {
  const interval = new Gauge({ name: 'thinlv_master_pass_interval_seconds', help: 'The time between passes the master was started with (--interval-ms)', registers: [registry] });
  interval.set(intervalMs / 1000);
  return {
    total: new Counter({ name: 'thinlv_master_passes_total', help: 'Passes run to their end, failed ones included', registers: [registry] }),
    duration: new Histogram({ name: 'thinlv_master_pass_duration_seconds', help: 'Time each pass took, failed ones included', buckets: PASS_BUCKETS_SECONDS, registers: [registry] }),
    // 0 until a pass succeeds, so a master that never passes is seen as not passing.
    lastSuccess: new Gauge({ name: 'thinlv_master_last_successful_pass_timestamp_seconds', help: 'When the last pass that succeeded ended (unix time; 0 before the first)', registers: [registry] }),
  };
}

function replayMetrics(registry: Registry) {
  const perHost = { labelNames: ['host'] as const, registers: [registry] };
  const commits = new Counter({ name: 'thinlv_master_commits_total', help: 'Metadata commits passes made (a pass with nothing to change commits nothing)', registers: [registry] });
  const replayed = new Counter({ name: 'thinlv_master_replayed_records_total', help: 'Journal records replayed into metadata', ...perHost });
  const rejected = new Counter({ name: 'thinlv_master_rejected_records_total', help: 'Journal records replay refused (not applied; see the master log)', ...perHost });
  const lag = new Gauge({ name: 'thinlv_master_replay_lag_records', help: "Records after the host's applied seq when the last pass read its journal: journaled, not yet replayed", ...perHost });
  const grants = new Counter({ name: 'thinlv_master_grants_total', help: 'Grants committed to host pools', ...perHost });
  const granted = new Counter({ name: 'thinlv_master_granted_extents_total', help: 'Extents grants added to host pools', ...perHost });
  return {
    update(pass: ObservedPass, hosts: readonly string[]): void {
      if (pass.didCommit) commits.inc();
      lag.reset(); // hosts removed since drop out
      for (const host of hosts) {
        lag.set({ host }, pass.records.get(host)?.length ?? 0);
        // Zero increments, so every host has its series from its first pass and rate() sees the first change.
        for (const counter of [replayed, rejected, grants, granted]) counter.inc({ host }, 0);
      }
      for (const host of pass.replay.hosts) {
        replayed.inc({ host: host.host }, host.appliedRecordCount);
        rejected.inc({ host: host.host }, host.rejected.length);
      }
      for (const grant of pass.refill.grants) {
        grants.inc({ host: grant.host });
        granted.inc({ host: grant.host }, grant.extentCount);
      }
    },
  };
}

function vgMetrics(registry: Registry) {
  // No sample until the first pass: a 0 would read as an empty VG.
  const vgGauge = (name: string, help: string) => {
    const gauge = new Gauge({ name, help, registers: [registry] });
    gauge.remove();
    return gauge;
  };
  const extents = vgGauge('thinlv_vg_extents', "The VG's size in extents");
  const extentBytes = vgGauge('thinlv_vg_extent_size_bytes', "The VG's extent size");
  const committed = vgGauge('thinlv_vg_committed_extents', 'Extents allocated to any LV, host pools included (the VG less its free extents), as thinlv free counts them');
  const free = vgGauge('thinlv_vg_free_extents', 'Extents in no LV (the reserve included)');
  const reserve = vgGauge('thinlv_vg_reserve_extents', 'Free extents pools are never granted from');
  const virtual = vgGauge('thinlv_vg_virtual_bytes', 'Virtual size provisioned to thin LVs, in all');
  const warn = vgGauge('thinlv_vg_alert_warning_ratio', "The VG's warning level: committed extents over VG extents (tag thinlv_warn_permille, default 0.75)");
  const critical = vgGauge('thinlv_vg_alert_critical_ratio', "The VG's critical level: committed extents over VG extents (tag thinlv_critical_permille, default 0.85)");
  const pools = new Gauge({ name: 'thinlv_vg_host_pool_extents', help: "Each host's pool as the last pass left it: its free LV less its records not yet replayed", labelNames: ['host'], registers: [registry] });
  return {
    update(pass: ObservedPass, hosts: readonly string[]): void {
      // The pass read every host's records after its applied seq: exactly what `thinlv free` reads.
      const journals = new Map<string, HostJournal>(hosts.map((host) => [host, { readable: true, records: pass.records.get(host) ?? [] }]));
      const report = computeFreeSpace(pass.vg, journals, readAlertLevels(pass.vg));
      extents.set(report.extentCount);
      extentBytes.set(report.extentSizeBytes);
      committed.set(report.committedExtents);
      free.set(report.freeExtents);
      reserve.set(report.reserveExtents);
      virtual.set(report.virtualBytes);
      warn.set(report.warnRatio);
      critical.set(report.criticalRatio);
      pools.reset();
      for (const host of report.hosts) pools.set({ host: host.host }, host.poolExtents);
    },
  };
}
