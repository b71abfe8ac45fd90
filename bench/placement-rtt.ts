/**
 * One-connection RTT under fixed CPU placements (docs/performance.md,
 * "Sixth pass"): is the difference between two systems theirs, or where the
 * scheduler happened to put the chain's processes?
 *
 *   node --import tsx bench/placement-rtt.ts [--rounds N] [--systems a,b,...] [--placements p,q,...]
 *
 * Every system is started once in front of one provider; each round visits
 * every placement and every system, pins the measuring client (this
 * process), the provider and the system's processes with taskset -a, takes
 * one slice of round trips, and restores every mask. Prints the median p50 of
 * the slices per system and placement, with the slices. Needs two CPUs.
 * Loopback only; bounded by the round count and each slice's time limit.
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { affinityUnavailable, allowedCpuList, cpuListMembers, setAffinity, setOwnAffinity } from './lib/cpu-affinity.js';
import { measureRtt } from './lib/measure-rtt.js';
import { startProvider } from './lib/providers.js';
import { median } from './lib/stats.js';
import { SYSTEMS, type RunningSystem } from './lib/systems.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TRIPS_PER_SLICE = 2_000;
const WARMUP_TRIPS = 300;
const MESSAGE_BYTES = 64;
const SLICE_TIMEOUT_MS = 20_000;

/**
 * CPUs for [client, provider, client-side proxy, server-side proxy], as
 * offsets into the allowed CPUs; null = all allowed CPUs (the scheduler decides).
 */
const PLACEMENTS: Record<string, (0 | 1 | null)[]> = {
  free: [null, null, null, null],
  'one-cpu': [0, 0, 0, 0],
  'client-side|server-side': [0, 1, 0, 1],
  'proxies-apart': [null, null, 0, 1],
  'proxies-together': [1, 1, 0, 0],
  'proxies-together-mirrored': [0, 0, 1, 1],
};

function parseArgs(argv: string[]): { rounds: number; systems: string[]; placements: string[] } {
  const out = { rounds: 6, systems: ['direct', 'jumper', 'spiped'], placements: Object.keys(PLACEMENTS) };
  for (let i = 0; i < argv.length; i++) {
    const value = argv[i + 1];
    if (argv[i] === '--rounds' && value) out.rounds = Math.max(1, Math.min(50, Number(value) || 1));
    else if (argv[i] === '--systems' && value) out.systems = value.split(',');
    else if (argv[i] === '--placements' && value) out.placements = value.split(',');
    else throw new Error(`unknown or incomplete argument ${argv[i]}`);
    i++;
  }
  for (const p of out.placements) if (!(p in PLACEMENTS)) throw new Error(`unknown placement ${p} (${Object.keys(PLACEMENTS).join(', ')})`);
  return out;
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const unavailable = affinityUnavailable();
  const all = allowedCpuList();
  if (unavailable !== null || all === null) throw new Error(`cannot pin: ${unavailable}`);
  const cpus = cpuListMembers(all);
  if (cpus.length < 2) throw new Error(`needs two CPUs, has ${all}`);
  const cpuOf = (slot: 0 | 1 | null): string => (slot === null ? all : String(cpus[slot]));

  const provider = await startProvider();
  const workDir = mkdtempSync(path.join(os.tmpdir(), 'jumper-placement-'));
  const running: RunningSystem[] = [];
  const p50s = new Map<string, number[]>();
  try {
    for (const name of opts.systems) {
      const spec = SYSTEMS.find((s) => s.name === name);
      if (spec === undefined) throw new Error(`unknown system ${name}`);
      const ctx = { repoRoot: REPO_ROOT, workDir, providerPort: provider.port, maxConnections: 100, jumperFromSource: false };
      const skip = await spec.detect(ctx);
      if (skip !== null) {
        console.log(`skipping ${name}: ${skip}`);
        continue;
      }
      running.push(await spec.start(ctx));
    }
    for (const sys of running) await measureRtt(sys.entryPort, WARMUP_TRIPS, MESSAGE_BYTES, SLICE_TIMEOUT_MS);
    for (let round = 0; round < opts.rounds; round++) {
      for (const placement of opts.placements) {
        const [client, prov, clientSide, serverSide] = PLACEMENTS[placement]!;
        for (const sys of running) {
          // pids: a pair lists its server first, then its client.
          const proxies = sys.pids.length > 1 ? [[sys.pids[1]!, clientSide!], [sys.pids[0]!, serverSide!]] : sys.pids.map((p) => [p, clientSide!] as const);
          // The hand-off receiver's provider copy is on the data path, server side.
          const helpers = sys.helperPids ?? [];
          try {
            setOwnAffinity(cpuOf(client!));
            setAffinity([provider.process.pid], cpuOf(prov!));
            for (const [pid, slot] of proxies) setAffinity([pid as number], cpuOf(slot as 0 | 1 | null));
            if (helpers.length > 0) setAffinity(helpers, cpuOf(serverSide!));
            await measureRtt(sys.entryPort, WARMUP_TRIPS, MESSAGE_BYTES, SLICE_TIMEOUT_MS);
            const r = await measureRtt(sys.entryPort, TRIPS_PER_SLICE, MESSAGE_BYTES, SLICE_TIMEOUT_MS);
            const key = `${sys.name}\t${placement}`;
            p50s.set(key, [...(p50s.get(key) ?? []), r.p50Us]);
          } finally {
            setAffinity([provider.process.pid, ...sys.pids, ...helpers], all);
            setOwnAffinity(all);
          }
        }
      }
    }
  } finally {
    for (const sys of running) await sys.stop();
    await provider.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  console.log('system\tplacement\tRTT p50 µs (median)\tslices');
  for (const [key, values] of p50s) console.log(`${key}\t${median(values).toFixed(0)}\t${values.map((v) => v.toFixed(0)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
