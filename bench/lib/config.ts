/**
 * Every size, count and timeout the benchmark uses, in one place.
 *
 * Two profiles: `full` (the default, for numbers worth publishing) and
 * `quick` (`--quick`, a smoke run that finishes in well under two minutes).
 * Every loop in the benchmark is bounded both by a count and by a time limit
 * taken from here, so a wedged proxy can only ever cost a bounded delay.
 */

export const MiB = 1024 * 1024;
export const KiB = 1024;
/** Throughput and CPU figures use decimal units (MB/s, GB) like iperf. */
export const MB = 1_000_000;
export const GB = 1_000_000_000;

/** Only loopback, ever. */
export const LOOPBACK = '127.0.0.1';

export interface Profile {
  readonly name: 'full' | 'quick';
  /** Bytes per single-stream bulk transfer (each direction). */
  readonly bulkSingleBytes: number;
  /** Number of parallel streams in the multi-stream bulk test. */
  readonly bulkParallelStreams: number;
  /** Total bytes (all streams together) of the multi-stream bulk test. */
  readonly bulkParallelTotalBytes: number;
  /** Repetitions of each bulk test; the median is reported. */
  readonly bulkRepetitions: number;
  /** Hard time limit for one bulk transfer (all streams of one repetition). */
  readonly bulkTimeoutMs: number;
  /** Warm-up: bytes sent each way plus round trips, before measuring. */
  readonly warmupBytes: number;
  readonly warmupRoundTrips: number;
  /** Sequential connection setup: stop after this long or this many. */
  readonly setupDurationMs: number;
  /**
   * The same loop run first, not measured, for every system: long-running
   * daemons are measured warm (JIT-compiled code paths, filled caches). This
   * long before the first set-up round; later rounds warm up for at most 1 s.
   */
  readonly setupWarmupMs: number;
  readonly setupMaxConnections: number;
  /** Time limit for one single connect+echo+close cycle. */
  readonly setupPerConnectionTimeoutMs: number;
  /** Request/response latency test. */
  readonly rttRoundTrips: number;
  /**
   * RTT slices per round, each a pass over every system: p50 and p99 are the
   * medians of all slices' percentiles. One-connection RTT swings by a fifth
   * between slices (two rows with the same data path differed that much in
   * one run), so many short interleaved slices beat a few long ones.
   */
  readonly rttSlicesPerRound: number;
  /**
   * RTT slices per round with the client, the provider and the system's
   * processes pinned to one CPU (see cpu-affinity.ts): the same trips per
   * slice, reported as a figure of its own beside the unpinned one.
   */
  readonly rttOneCpuSlicesPerRound: number;
  readonly rttMessageBytes: number;
  readonly rttTimeoutMs: number;
  /** Idle connections held open to measure per-connection memory. */
  readonly idleConnections: number;
  /** How many of those are being opened at the same time. */
  readonly idleOpenConcurrency: number;
  readonly idleTimeoutMs: number;
  /** Settle time before reading memory (lets allocators and threads settle). */
  readonly memorySettleMs: number;
  /** Connections opened all at once in the burst figure. */
  readonly burstConnections: number;
  /** Time limit for each burst connection (connect + echo). */
  readonly burstTimeoutMs: number;
}

export const FULL: Profile = {
  name: 'full',
  // 512 MiB takes about half a second at jumper's rate (256 MiB took a
  // quarter, where one scheduler hiccup moved a figure by a tenth); five
  // rounds so a median is not decided by one slow round.
  bulkSingleBytes: 512 * MiB,
  bulkParallelStreams: 8,
  bulkParallelTotalBytes: 512 * MiB,
  bulkRepetitions: 5,
  bulkTimeoutMs: 60_000,
  warmupBytes: 16 * MiB,
  warmupRoundTrips: 500,
  setupDurationMs: 8_000,
  setupWarmupMs: 5_000,
  setupMaxConnections: 50_000,
  setupPerConnectionTimeoutMs: 5_000,
  rttRoundTrips: 30_000,
  rttSlicesPerRound: 3,
  rttOneCpuSlicesPerRound: 2,
  rttMessageBytes: 64,
  rttTimeoutMs: 60_000,
  idleConnections: 1_000,
  idleOpenConcurrency: 32,
  idleTimeoutMs: 60_000,
  memorySettleMs: 500,
  burstConnections: 10_000,
  burstTimeoutMs: 60_000,
};

export const QUICK: Profile = {
  name: 'quick',
  bulkSingleBytes: 32 * MiB,
  bulkParallelStreams: 8,
  bulkParallelTotalBytes: 32 * MiB,
  bulkRepetitions: 1,
  bulkTimeoutMs: 20_000,
  warmupBytes: 4 * MiB,
  warmupRoundTrips: 100,
  setupDurationMs: 1_000,
  setupWarmupMs: 300,
  setupMaxConnections: 10_000,
  setupPerConnectionTimeoutMs: 5_000,
  rttRoundTrips: 2_000,
  rttSlicesPerRound: 1,
  rttOneCpuSlicesPerRound: 1,
  rttMessageBytes: 64,
  rttTimeoutMs: 20_000,
  idleConnections: 200,
  idleOpenConcurrency: 32,
  idleTimeoutMs: 20_000,
  memorySettleMs: 300,
  burstConnections: 1_000,
  burstTimeoutMs: 20_000,
};

/**
 * File descriptor limit the runner raises itself (and so every process it
 * starts) to: a 10,000-connection burst through a proxy pair needs two fds
 * per stream in each proxy.
 */
export const NOFILE_LIMIT = 65_536;

/** Starting a system: how long its listen ports may take to accept. */
export const STARTUP_TIMEOUT_MS = 15_000;
/** Poll interval while waiting for a port to accept. */
export const PORT_POLL_INTERVAL_MS = 50;
/** After SIGTERM, how long to wait before SIGKILL. */
export const STOP_GRACE_MS = 1_500;
/** Time limit for detection commands such as `jumper --help`. */
export const PROBE_TIMEOUT_MS = 10_000;
/** Time limit for one end-to-end readiness echo through a fresh system. */
export const READY_ECHO_TIMEOUT_MS = 5_000;
/** Time limit for the provider child process to report its port. */
export const PROVIDER_START_TIMEOUT_MS = 20_000;
/** Hard limit on the whole run; the runner aborts (and cleans up) after it. */
export const RUN_TIMEOUT_MS = { full: 30 * 60_000, quick: 4 * 60_000 } as const;
