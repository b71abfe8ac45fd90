/**
 * jumper benchmark runner: every available system in front of the same
 * provider, on loopback, in one run.
 *
 *   node --import tsx bench/run.ts [--quick] [--only a,b] [--skip a,b] [--jumper-src] [--no-write]
 *
 * Progress goes to stderr; the tables go to stdout; all figures plus machine
 * info go to bench/results/<YYYY-MM-DD>.json (<date>-quick.json for --quick).
 * See bench/README.md for what each figure means.
 */

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FULL, GB, NOFILE_LIMIT, QUICK, RUN_TIMEOUT_MS, type Profile } from './lib/config.js';
import { raiseFdLimit } from './lib/fd-limit.js';
import { measureBurst } from './lib/measure-burst.js';
import { measureBulk, type Direction } from './lib/measure-throughput.js';
import { measureMemory } from './lib/measure-memory.js';
import { measureRtt } from './lib/measure-rtt.js';
import { measureSetup } from './lib/measure-setup.js';
import { cpuSeconds } from './lib/proc-stats.js';
import { stopAll } from './lib/processes.js';
import { startProvider } from './lib/providers.js';
import { machineInfo, writeResults, type BulkFigure, type SystemResult } from './lib/results.js';
import { renderChart } from './lib/chart.js';
import { SYSTEMS, type RunningSystem, type SystemContext, type SystemSpec } from './lib/systems.js';
import { TABLE_LEGEND, absoluteTable, ratioTable } from './lib/table.js';
import { median } from './lib/stats.js';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(BENCH_DIR, '..');
const RESULTS_DIR = path.join(BENCH_DIR, 'results');
/** Ratio tables are printed against these systems, if they ran. */
const REFERENCE_SYSTEMS = ['spiped', 'stunnel'];

interface Options {
  profile: Profile;
  only: string[] | null;
  skip: string[];
  jumperFromSource: boolean;
  write: boolean;
}

const USAGE = `usage: node --import tsx bench/run.ts [options]
  --quick          smoke run (small sizes, short durations; < 2 minutes)
  --only a,b       run only these systems (plus nothing else; add 'direct' for the baseline)
  --skip a,b       leave these systems out
  --jumper-src     run jumper from src/ via tsx instead of dist/
  --no-write       do not write bench/results/*.json
systems: ${SYSTEMS.map((s) => s.name).join(', ')}`;

function parseArgs(argv: readonly string[]): Options {
  const opts: Options = { profile: FULL, only: null, skip: [], jumperFromSource: false, write: true };
  const list = (v: string | undefined, flag: string): string[] => {
    if (v === undefined || v.startsWith('--')) throw new Error(`${flag} needs a comma-separated list`);
    return v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const [flag, inline] = a.includes('=') ? (a.split('=', 2) as [string, string]) : [a, undefined];
    switch (flag) {
      case '--quick':
        opts.profile = QUICK;
        break;
      case '--only':
        opts.only = list(inline ?? argv[++i], flag);
        break;
      case '--skip':
        opts.skip = list(inline ?? argv[++i], flag);
        break;
      case '--jumper-src':
        opts.jumperFromSource = true;
        break;
      case '--no-write':
        opts.write = false;
        break;
      case '--help':
      case '-h':
        process.stdout.write(USAGE + '\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  const known = new Set(SYSTEMS.map((s) => s.name));
  for (const n of [...(opts.only ?? []), ...opts.skip]) {
    if (!known.has(n)) throw new Error(`unknown system '${n}'; known: ${[...known].join(', ')}`);
  }
  return opts;
}

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

async function bulkFigure(
  sys: RunningSystem,
  profile: Profile,
  direction: Direction,
  streams: number,
  bytes: number,
): Promise<BulkFigure> {
  const runs = [];
  for (let i = 0; i < profile.bulkRepetitions; i++) {
    runs.push(await measureBulk(sys.entryPort, direction, streams, bytes, profile.bulkTimeoutMs));
  }
  return {
    direction,
    streams,
    bytesPerRun: runs[0]?.bytes ?? 0,
    runs,
    medianMBps: median(runs.map((r) => r.mbPerSec)),
  };
}

/** Run one phase; a failure is recorded and the remaining phases still run. */
async function phase(result: SystemResult, name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const msg = `${name}: ${errText(err)}`;
    result.phaseErrors.push(msg);
    log(`  ${result.name}: ${msg}`);
  }
}

async function measureSystem(sys: RunningSystem, profile: Profile, result: SystemResult): Promise<void> {
  const port = sys.entryPort;
  const pids = sys.pids;
  const hasProxy = pids.length > 0;

  await phase(result, 'warm-up', async () => {
    await measureBulk(port, 'upload', 1, profile.warmupBytes, profile.bulkTimeoutMs);
    await measureBulk(port, 'download', 1, profile.warmupBytes, profile.bulkTimeoutMs);
    await measureRtt(port, profile.warmupRoundTrips, profile.rttMessageBytes, profile.rttTimeoutMs);
  });

  await phase(result, 'bulk', async () => {
    const bulk: NonNullable<SystemResult['bulk']> = {};
    result.bulk = bulk;
    const cpu0 = cpuSeconds(pids);
    const n = profile.bulkParallelStreams;
    bulk.upload1 = await bulkFigure(sys, profile, 'upload', 1, profile.bulkSingleBytes);
    bulk.download1 = await bulkFigure(sys, profile, 'download', 1, profile.bulkSingleBytes);
    bulk.uploadN = await bulkFigure(sys, profile, 'upload', n, profile.bulkParallelTotalBytes);
    bulk.downloadN = await bulkFigure(sys, profile, 'download', n, profile.bulkParallelTotalBytes);
    const bulkCpuSeconds = cpuSeconds(pids) - cpu0;
    const bulkBytes = [bulk.upload1, bulk.download1, bulk.uploadN, bulk.downloadN]
      .flatMap((f) => f.runs)
      .reduce((sum, r) => sum + r.bytes, 0);
    result.cpu = {
      bulkCpuSeconds,
      bulkBytes,
      secondsPerGB: hasProxy ? bulkCpuSeconds / (bulkBytes / GB) : null,
      setupCpuSeconds: 0,
      setupMicrosPerConnection: null,
    };
    log(
      `  ${result.name}: up ${bulk.upload1.medianMBps.toFixed(0)} down ${bulk.download1.medianMBps.toFixed(0)} ` +
        `up×${n} ${bulk.uploadN.medianMBps.toFixed(0)} down×${n} ${bulk.downloadN.medianMBps.toFixed(0)} MB/s`,
    );
  });

  await phase(result, 'setup', async () => {
    await measureSetup(port, profile.setupWarmupMs, profile.setupMaxConnections, profile.setupPerConnectionTimeoutMs);
    const cpu0 = cpuSeconds(pids);
    const setup = await measureSetup(
      port,
      profile.setupDurationMs,
      profile.setupMaxConnections,
      profile.setupPerConnectionTimeoutMs,
    );
    const setupCpu = cpuSeconds(pids) - cpu0;
    result.setup = setup;
    if (result.cpu !== undefined) {
      result.cpu.setupCpuSeconds = setupCpu;
      result.cpu.setupMicrosPerConnection =
        hasProxy && setup.connections > 0 ? (setupCpu / setup.connections) * 1e6 : null;
    }
    if (setup.errors > 0) result.phaseErrors.push(`setup: ${setup.errors} failed connections (${setup.firstError})`);
    log(`  ${result.name}: ${setup.perSecond.toFixed(0)} conn/s (${setup.connections} in ${setup.seconds.toFixed(1)} s)`);
  });

  await phase(result, 'rtt', async () => {
    const rtt = await measureRtt(port, profile.rttRoundTrips, profile.rttMessageBytes, profile.rttTimeoutMs);
    result.rtt = rtt;
    log(`  ${result.name}: RTT p50 ${rtt.p50Us.toFixed(1)} µs p99 ${rtt.p99Us.toFixed(1)} µs (${rtt.count})`);
  });

  if (hasProxy) {
    await phase(result, 'memory', async () => {
      const mem = await measureMemory(
        port,
        pids,
        profile.idleConnections,
        profile.idleOpenConcurrency,
        profile.idleTimeoutMs,
        profile.memorySettleMs,
      );
      result.memory = mem;
      if (mem.opened < mem.requested) {
        result.phaseErrors.push(`memory: opened ${mem.opened}/${mem.requested} connections (${mem.firstError})`);
      }
      log(
        `  ${result.name}: ${mem.pssKiBPerConnection.toFixed(1)} KiB/conn PSS ` +
          `(${mem.rssKiBPerConnection.toFixed(1)} RSS) over ${mem.opened} idle connections`,
      );
    });
  }

  await phase(result, 'burst', async () => {
    const burst = await measureBurst(port, profile.burstConnections, profile.burstTimeoutMs);
    result.burst = burst;
    if (burst.served < burst.requested) {
      result.phaseErrors.push(`burst: served ${burst.served}/${burst.requested} (${burst.firstError})`);
    }
    log(`  ${result.name}: burst ${burst.served}/${burst.requested} served, last echo after ${burst.seconds.toFixed(2)} s`);
  });
}

async function benchSystem(spec: SystemSpec, ctx: SystemContext, profile: Profile): Promise<SystemResult> {
  const result: SystemResult = {
    name: spec.name,
    group: spec.group,
    description: spec.description,
    status: 'ok',
    phaseErrors: [],
  };
  if (spec.notes !== undefined) result.notes = spec.notes;
  const skipReason = await spec.detect(ctx);
  if (skipReason !== null) {
    log(`skipping ${spec.name}: ${skipReason}`);
    return { ...result, status: 'skipped', reason: skipReason };
  }
  log(`${spec.name}: starting`);
  const t0 = Date.now();
  let sys: RunningSystem;
  try {
    sys = await spec.start(ctx);
  } catch (err) {
    log(`${spec.name}: failed to start: ${errText(err)}`);
    return { ...result, status: 'failed', reason: `start: ${errText(err)}` };
  }
  try {
    await measureSystem(sys, profile, result);
  } finally {
    await sys.stop();
  }
  result.wallSeconds = (Date.now() - t0) / 1000;
  if (result.bulk === undefined && result.setup === undefined && result.rtt === undefined) {
    result.status = 'failed';
    result.reason = result.phaseErrors.join('; ');
  }
  return result;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const profile = opts.profile;
  const hardStop = setTimeout(() => {
    log(`run exceeded ${RUN_TIMEOUT_MS[profile.name] / 1000} s, aborting`);
    void stopAll().finally(() => process.exit(2));
  }, RUN_TIMEOUT_MS[profile.name]);
  hardStop.unref();

  const selected = SYSTEMS.filter(
    (s) => (opts.only === null || opts.only.includes(s.name)) && !opts.skip.includes(s.name),
  );
  const startedAt = new Date();
  const loadAverageAtStart = os.loadavg();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'jumper-bench-'));
  log(`profile ${profile.name}; systems: ${selected.map((s) => s.name).join(', ')}`);
  const nofile = raiseFdLimit(NOFILE_LIMIT);
  if (nofile < NOFILE_LIMIT) log(`open files limited to ${nofile}: the burst figure may be capped by it`);

  const results: SystemResult[] = [];
  const provider = await startProvider();
  try {
    log(`provider on 127.0.0.1:${provider.port} (pid ${provider.process.pid})`);
    const ctx: SystemContext = {
      repoRoot: REPO_ROOT,
      workDir,
      providerPort: provider.port,
      maxConnections: Math.max(profile.idleConnections, profile.burstConnections),
      jumperFromSource: opts.jumperFromSource,
    };
    for (const spec of selected) results.push(await benchSystem(spec, ctx, profile));
  } finally {
    await provider.stop();
    rmSync(workDir, { recursive: true, force: true });
  }

  const out: string[] = [];
  out.push('', `jumper bench (${profile.name}) — ${startedAt.toISOString()}`, '', absoluteTable(results));
  for (const ref of REFERENCE_SYSTEMS) {
    const t = ratioTable(results, ref);
    if (t !== null) out.push('', t);
  }
  out.push('', TABLE_LEGEND);
  const notRun = results.filter((r) => r.status !== 'ok');
  for (const r of notRun) out.push(`${r.status}: ${r.name} — ${r.reason ?? ''}`);
  for (const r of results) for (const e of r.phaseErrors) out.push(`warning: ${r.name} ${e}`);

  if (opts.write) {
    const file = writeResults(RESULTS_DIR, {
      date: startedAt.toISOString().slice(0, 10),
      startedAt: startedAt.toISOString(),
      profile,
      argv: process.argv.slice(2),
      loadAverageAtStart,
      machine: await machineInfo(),
      systems: results,
    });
    out.push('', `results: ${path.relative(process.cwd(), file)}`);
    if (profile.name === 'full') {
      // The README shows the last full run; right of 1x is better for every figure.
      const chart = path.join(RESULTS_DIR, '..', '..', 'docs', 'bench.svg');
      const caption = `npm run bench, ${startedAt.toISOString().slice(0, 10)}, ${os.cpus().length} cores, loopback; log scale, right of 1x is better`;
      writeFileSync(chart, renderChart(results, caption));
      out.push(`chart: ${path.relative(process.cwd(), chart)}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  const failed = results.some((r) => r.status === 'failed');
  process.exitCode = failed ? 1 : 0;
}

main().catch(async (err: unknown) => {
  log(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  await stopAll();
  process.exit(1);
});
