/** Shape of the per-system results and of the JSON results file. */

import os from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BulkRun } from './measure-throughput.js';
import type { BurstResult } from './measure-burst.js';
import type { MemoryResult } from './measure-memory.js';
import type { RttResult } from './measure-rtt.js';
import type { SetupResult } from './measure-setup.js';
import type { Profile } from './config.js';
import type { SystemGroup } from './systems.js';
import { runCommand } from './processes.js';

export interface BulkFigure {
  direction: 'upload' | 'download';
  streams: number;
  bytesPerRun: number;
  runs: BulkRun[];
  medianMBps: number;
}

export interface SystemResult {
  name: string;
  group: SystemGroup;
  description: string;
  notes?: string;
  status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or failed. */
  reason?: string;
  bulk?: {
    upload1?: BulkFigure;
    download1?: BulkFigure;
    uploadN?: BulkFigure;
    downloadN?: BulkFigure;
  };
  cpu?: {
    bulkCpuSeconds: number;
    bulkBytes: number;
    secondsPerGB: number | null;
    setupCpuSeconds: number;
    setupMicrosPerConnection: number | null;
    /** Proxy CPU over the unpinned RTT slices, and per round trip. */
    rttCpuSeconds?: number;
    rttMicrosPerRoundTrip?: number | null;
  };
  setup?: SetupResult;
  rtt?: RttResult;
  /** The same RTT measurement with the client, the provider and the system pinned to one CPU. */
  rttOneCpu?: RttResult;
  memory?: MemoryResult;
  burst?: BurstResult;
  /** Phases that failed while the others still produced figures. */
  phaseErrors: string[];
  wallSeconds?: number;
}

export interface MachineInfo {
  node: string;
  platform: string;
  kernel: string;
  cpuModel: string;
  cores: number;
  totalMemGiB: number;
  loadAverage: number[];
  rivals: Record<string, string>;
}

async function versionOf(command: string, args: string[]): Promise<string> {
  const r = await runCommand(command, args, 5_000);
  const text = `${r.stdout}\n${r.stderr}`.split('\n').find((l) => /\d+\.\d+/.test(l));
  return text?.trim() ?? 'unknown';
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpus = os.cpus();
  return {
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    loadAverage: os.loadavg(),
    rivals: {
      spiped: await versionOf('spiped', ['-v']),
      stunnel: await versionOf('stunnel4', ['-version']),
      socat: await versionOf('socat', ['-V']),
      systemd: await versionOf('systemd-socket-activate', ['--version']),
      openssl: await versionOf('openssl', ['version']),
    },
  };
}

export interface ResultsFile {
  date: string;
  startedAt: string;
  profile: Profile;
  argv: string[];
  /** 1/5/15-minute load average before the first system ran (machine.loadAverage is at the end). */
  loadAverageAtStart: number[];
  machine: MachineInfo;
  systems: SystemResult[];
}

/** Write bench/results/<YYYY-MM-DD>[-quick].json; returns the path. */
export function writeResults(dir: string, file: ResultsFile): string {
  mkdirSync(dir, { recursive: true });
  const suffix = file.profile.name === 'quick' ? '-quick' : '';
  const out = path.join(dir, `${file.date}${suffix}.json`);
  writeFileSync(out, JSON.stringify(file, null, 2) + '\n');
  return out;
}
