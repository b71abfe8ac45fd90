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
import { measureBulk, type BulkRun, type Direction } from './lib/measure-throughput.js';
import { measureMemory } from './lib/measure-memory.js';
import { measureRtt, type RttResult } from './lib/measure-rtt.js';
import { affinityUnavailable, allowedCpuList, firstCpu, setAffinity, setOwnAffinity } from './lib/cpu-affinity.js';
import { measureSetup, type SetupResult } from './lib/measure-setup.js';
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

type BulkKey = 'upload1' | 'download1' | 'uploadN' | 'downloadN';

/** A started system and what its interleaved rounds collected so far. */
interface Running {
  sys: RunningSystem;
  result: SystemResult;
  startedAt: number;
  bulkRuns: Record<BulkKey, BulkRun[]>;
  bulkCpuSeconds: number;
  setupRounds: SetupResult[];
  setupCpuSeconds: number;
  rttRounds: RttResult[];
  rttCpuSeconds: number;
  rttOneCpuRounds: RttResult[];
}

/** Where the one-CPU RTT slices run, and what to restore afterwards; null when pinning is unavailable. */
interface Pinning {
  readonly cpu: string;
  readonly allCpus: string;
  /** The shared provider. */
  readonly providerPid: number;
}

/** The four bulk figures: [key, direction, streams, bytes]. */
function bulkShapes(profile: Profile): [BulkKey, Direction, number, number][] {
  const n = profile.bulkParallelStreams;
  return [
    ['upload1', 'upload', 1, profile.bulkSingleBytes],
    ['download1', 'download', 1, profile.bulkSingleBytes],
    ['uploadN', 'upload', n, profile.bulkParallelTotalBytes],
    ['downloadN', 'download', n, profile.bulkParallelTotalBytes],
  ];
}

async function warmUp(r: Running, profile: Profile): Promise<void> {
  const port = r.sys.entryPort;
  await phase(r.result, 'warm-up', async () => {
    await measureBulk(port, 'upload', 1, profile.warmupBytes, profile.bulkTimeoutMs);
    await measureBulk(port, 'download', 1, profile.warmupBytes, profile.bulkTimeoutMs);
    await measureRtt(port, profile.warmupRoundTrips, profile.rttMessageBytes, profile.rttTimeoutMs);
  });
}

/** One repetition of every bulk figure for one system. */
async function bulkRound(r: Running, profile: Profile): Promise<void> {
  await phase(r.result, 'bulk', async () => {
    const cpu0 = cpuSeconds(r.sys.pids);
    try {
      for (const [key, direction, streams, bytes] of bulkShapes(profile)) {
        r.bulkRuns[key].push(await measureBulk(r.sys.entryPort, direction, streams, bytes, profile.bulkTimeoutMs));
      }
    } finally {
      r.bulkCpuSeconds += cpuSeconds(r.sys.pids) - cpu0;
    }
  });
}

/** One slice of the set-up figure: a short unmeasured warm-up, then setupDurationMs / rounds of sequential connections. */
async function setupRound(r: Running, profile: Profile, round: number): Promise<void> {
  await phase(r.result, 'setup', async () => {
    const port = r.sys.entryPort;
    const rounds = profile.bulkRepetitions;
    // The first round warms up for the whole warm-up; later ones only wake the system up again.
    const warmupMs = round === 0 ? profile.setupWarmupMs : Math.min(profile.setupWarmupMs, 1_000);
    await measureSetup(port, warmupMs, profile.setupMaxConnections, profile.setupPerConnectionTimeoutMs);
    const cpu0 = cpuSeconds(r.sys.pids);
    const setup = await measureSetup(port, Math.round(profile.setupDurationMs / rounds), profile.setupMaxConnections, profile.setupPerConnectionTimeoutMs);
    r.setupCpuSeconds += cpuSeconds(r.sys.pids) - cpu0;
    r.setupRounds.push(setup);
    if (setup.errors > 0) r.result.phaseErrors.push(`setup: ${setup.errors} failed connections (${setup.firstError})`);
  });
}

/** Round trips in one RTT slice, pinned or not: rttRoundTrips over every unpinned slice of the run. */
function tripsPerSlice(profile: Profile): number {
  return Math.ceil(profile.rttRoundTrips / (profile.bulkRepetitions * profile.rttSlicesPerRound));
}

/** One slice of the RTT figure: tripsPerSlice request/responses on one connection. */
async function rttRound(r: Running, profile: Profile): Promise<void> {
  await phase(r.result, 'rtt', async () => {
    const cpu0 = cpuSeconds(r.sys.pids);
    try {
      r.rttRounds.push(await measureRtt(r.sys.entryPort, tripsPerSlice(profile), profile.rttMessageBytes, profile.rttTimeoutMs));
    } finally {
      r.rttCpuSeconds += cpuSeconds(r.sys.pids) - cpu0;
    }
  });
}

/** One RTT slice with the client, the provider and the system on one CPU; every mask is restored afterwards. */
async function rttOneCpuRound(r: Running, profile: Profile, pinning: Pinning): Promise<void> {
  await phase(r.result, 'one-CPU RTT', async () => {
    const pinned = [pinning.providerPid, ...r.sys.pids, ...(r.sys.helperPids ?? [])];
    try {
      setOwnAffinity(pinning.cpu);
      setAffinity(pinned, pinning.cpu);
      r.rttOneCpuRounds.push(await measureRtt(r.sys.entryPort, tripsPerSlice(profile), profile.rttMessageBytes, profile.rttTimeoutMs));
    } finally {
      setAffinity(pinned, pinning.allCpus);
      setOwnAffinity(pinning.allCpus);
    }
  });
}

/** Each percentile is the median of the slices' percentiles; the count covers all slices. */
function summarizeRtt(slices: readonly RttResult[]): RttResult {
  const mid = (f: (x: RttResult) => number): number => median(slices.map(f));
  return {
    ...slices[0]!,
    count: slices.reduce((n, x) => n + x.count, 0),
    p50Us: mid((x) => x.p50Us),
    p90Us: mid((x) => x.p90Us),
    p99Us: mid((x) => x.p99Us),
    meanUs: mid((x) => x.meanUs),
    minUs: Math.min(...slices.map((x) => x.minUs)),
    maxUs: Math.max(...slices.map((x) => x.maxUs)),
    truncated: slices.some((x) => x.truncated),
    roundsP50Us: slices.map((x) => x.p50Us),
    roundsP99Us: slices.map((x) => x.p99Us),
  };
}

/** Turn the rounds' samples into the result's bulk, setup and cpu figures. */
function finishRounds(r: Running, profile: Profile): void {
  const { result } = r;
  const hasProxy = r.sys.pids.length > 0;
  const bulk: NonNullable<SystemResult['bulk']> = {};
  for (const [key, direction, streams] of bulkShapes(profile)) {
    const runs = r.bulkRuns[key];
    if (runs.length === 0) continue;
    const figure: BulkFigure = { direction, streams, bytesPerRun: runs[0]!.bytes, runs, medianMBps: median(runs.map((x) => x.mbPerSec)) };
    bulk[key] = figure;
  }
  if (Object.keys(bulk).length > 0) result.bulk = bulk;
  const bulkBytes = Object.values(r.bulkRuns)
    .flat()
    .reduce((sum, x) => sum + x.bytes, 0);
  let setup: SetupResult | undefined;
  if (r.setupRounds.length > 0) {
    // The round with the median rate stands for the figure (its latencies too); totals cover all rounds.
    const byRate = [...r.setupRounds].sort((a, b) => a.perSecond - b.perSecond);
    const mid = byRate[Math.floor((byRate.length - 1) / 2)]!;
    const connections = r.setupRounds.reduce((n, x) => n + x.connections, 0);
    setup = {
      ...mid,
      connections,
      seconds: r.setupRounds.reduce((n, x) => n + x.seconds, 0),
      errors: r.setupRounds.reduce((n, x) => n + x.errors, 0),
      roundsPerSecond: r.setupRounds.map((x) => x.perSecond),
    };
    result.setup = setup;
  }
  result.cpu = {
    bulkCpuSeconds: r.bulkCpuSeconds,
    bulkBytes,
    secondsPerGB: hasProxy && bulkBytes > 0 ? r.bulkCpuSeconds / (bulkBytes / GB) : null,
    setupCpuSeconds: r.setupCpuSeconds,
    setupMicrosPerConnection: hasProxy && setup && setup.connections > 0 ? (r.setupCpuSeconds / setup.connections) * 1e6 : null,
  };
  const trips = r.rttRounds.reduce((n, x) => n + x.count, 0);
  if (hasProxy && trips > 0) {
    result.cpu.rttCpuSeconds = r.rttCpuSeconds;
    result.cpu.rttMicrosPerRoundTrip = (r.rttCpuSeconds / trips) * 1e6;
  }
  const b = result.bulk;
  if (b) {
    const f = (x: BulkFigure | undefined) => (x ? x.medianMBps.toFixed(0) : '-');
    log(`  ${result.name}: up ${f(b.upload1)} down ${f(b.download1)} up×${profile.bulkParallelStreams} ${f(b.uploadN)} down×${profile.bulkParallelStreams} ${f(b.downloadN)} MB/s (medians)`);
  }
  if (setup) log(`  ${result.name}: ${setup.perSecond.toFixed(0)} conn/s (median of rounds ${setup.roundsPerSecond!.map((x) => x.toFixed(0)).join(', ')})`);
  if (r.rttRounds.length > 0) {
    result.rtt = summarizeRtt(r.rttRounds);
    log(`  ${result.name}: RTT p50 ${result.rtt.p50Us.toFixed(1)} µs p99 ${result.rtt.p99Us.toFixed(1)} µs (medians of ${r.rttRounds.length} slices, ${result.rtt.count} round trips)`);
  }
  if (r.rttOneCpuRounds.length > 0) {
    result.rttOneCpu = summarizeRtt(r.rttOneCpuRounds);
    log(`  ${result.name}: one-CPU RTT p50 ${result.rttOneCpu.p50Us.toFixed(1)} µs p99 ${result.rttOneCpu.p99Us.toFixed(1)} µs (medians of ${r.rttOneCpuRounds.length} slices)`);
  }
}

/** How much of the proxies' last output a failed burst keeps in the results. */
const MAX_PROXY_OUTPUT = 4000;

/** The figures that are not interleaved: idle memory and the burst. */
async function measureAlone(r: Running, profile: Profile): Promise<void> {
  const { result, sys } = r;
  const port = sys.entryPort;
  if (sys.pids.length > 0) {
    await phase(result, 'memory', async () => {
      const mem = await measureMemory(port, sys.pids, profile.idleConnections, profile.idleOpenConcurrency, profile.idleTimeoutMs, profile.memorySettleMs);
      result.memory = mem;
      if (mem.opened < mem.requested) {
        result.phaseErrors.push(`memory: opened ${mem.opened}/${mem.requested} connections (${mem.firstError})`);
      }
      log(`  ${result.name}: ${mem.pssKiBPerConnection.toFixed(1)} KiB/conn PSS (${mem.rssKiBPerConnection.toFixed(1)} RSS) over ${mem.opened} idle connections`);
    });
  }

  await phase(result, 'burst', async () => {
    const burst = await measureBurst(port, profile.burstConnections, profile.burstTimeoutMs);
    result.burst = burst;
    if (burst.served < burst.requested) {
      // The proxies' own account of the failure (jumpers log each failed connection with its reason at warn).
      const said = sys.output?.().slice(-MAX_PROXY_OUTPUT);
      result.phaseErrors.push(`burst: served ${burst.served}/${burst.requested} (${burst.firstError})${said ? `; the proxies' last lines: ${said}` : ''}`);
    }
    log(`  ${result.name}: burst ${burst.served}/${burst.requested} served, last echo after ${burst.seconds.toFixed(2)} s`);
  });
}

/** Detect and start one system; a result with status skipped/failed when it cannot run. */
async function startSystem(spec: SystemSpec, ctx: SystemContext): Promise<Running | SystemResult> {
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
  const startedAt = Date.now();
  try {
    const sys = await spec.start(ctx);
    return {
      sys,
      result,
      startedAt,
      bulkRuns: { upload1: [], download1: [], uploadN: [], downloadN: [] },
      bulkCpuSeconds: 0,
      setupRounds: [],
      setupCpuSeconds: 0,
      rttCpuSeconds: 0,
      rttRounds: [],
      rttOneCpuRounds: [],
    };
  } catch (err) {
    log(`${spec.name}: failed to start: ${errText(err)}`);
    return { ...result, status: 'failed', reason: `start: ${errText(err)}` };
  }
}

/**
 * Every system runs at once (idle ones cost nothing) and the bulk and
 * set-up and RTT figures are taken in rounds, each round visiting every
 * system in turn: a machine that gets slower or faster during the run then
 * moves all systems alike, and the ratios hold. Memory and the burst follow,
 * one system at a time.
 */
async function benchAll(specs: readonly SystemSpec[], ctx: SystemContext, profile: Profile, pinning: Pinning | null): Promise<SystemResult[]> {
  const started: (Running | SystemResult)[] = [];
  for (const spec of specs) started.push(await startSystem(spec, ctx));
  const running = started.filter((x): x is Running => 'sys' in x);
  try {
    for (const r of running) await warmUp(r, profile);
    for (let round = 0; round < profile.bulkRepetitions; round++) {
      log(`round ${round + 1}/${profile.bulkRepetitions}: bulk, set-up and RTT, every system in turn`);
      for (const r of running) {
        await bulkRound(r, profile);
        await setupRound(r, profile, round);
        await rttRound(r, profile);
      }
      for (let slice = 1; slice < profile.rttSlicesPerRound; slice++) {
        for (const r of running) await rttRound(r, profile);
      }
      if (pinning !== null) {
        for (let slice = 0; slice < profile.rttOneCpuSlicesPerRound; slice++) {
          for (const r of running) await rttOneCpuRound(r, profile, pinning);
        }
      }
    }
    for (const r of running) finishRounds(r, profile);
    for (const r of running) await measureAlone(r, profile);
  } finally {
    for (const r of running) await r.sys.stop();
  }
  return started.map((x) => {
    if (!('sys' in x)) return x;
    const { result } = x;
    result.wallSeconds = (Date.now() - x.startedAt) / 1000;
    if (result.bulk === undefined && result.setup === undefined && result.rtt === undefined) {
      result.status = 'failed';
      result.reason = result.phaseErrors.join('; ');
    }
    return result;
  });
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
    const allCpus = allowedCpuList();
    const noPinning = affinityUnavailable();
    if (noPinning !== null) log(`no one-CPU RTT figure: ${noPinning}`);
    const pinning = noPinning === null && allCpus !== null ? { cpu: firstCpu(allCpus), allCpus, providerPid: provider.process.pid } : null;
    results.push(...(await benchAll(selected, ctx, profile, pinning)));
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
