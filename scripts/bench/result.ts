// The shape of one benchmark run: what main.ts measures, report.ts prints and
// results/bench-<date>.json keeps.
import type { Chatty } from './chatty.js';
import type { InstallCost } from './install.js';
import type { Startup } from './startup.js';
import type { DeployCost } from './deploy.js';
import type { Pinned } from './placement.js';
import type { DemoRun } from './reuseport-demo.js';

/** The stages of a run, in their order; BENCH_STAGES picks some. */
export const STAGES = ['throughput', 'stall', 'changes', 'upgrade', 'status', 'deploy', 'log', 'pinned', 'install', 'reuseport-demo'] as const;
export type Stage = (typeof STAGES)[number];

export interface Options {
  workers: number;
  rounds: number;
  seconds: number;
  changes: number;
  connections: number;
  clientConcurrency: number;
  /** The stages this run measures (BENCH_STAGES), in the order they run. */
  stages: Stage[];
  statusWorkers: number;
  skipPm2: boolean;
  stallSeconds: number;
}

export interface Load {
  key: string;
  label: string;
  tool: 'autocannon' | 'wrk' | 'client';
  close: boolean;
}

export interface LoadSummary {
  rps: number | null;
  p99: number | null;
  max: number | null;
  failed: number;
  cv: number | null;
  managerCpuPct: number | null;
  managerRssMaxKb: number | null;
  workersRssKb: number | null;
  /**
   * Where the throughput comes from: req/s = the CPU the workers got (cores) divided by the
   * CPU they spend per request. The rest of the machine went mostly to the load generator.
   */
  workersCores: number | null;
  cpuUsPerRequest: number | null;
  othersCores: number | null;
  vsClusterRr?: number | null;
  vsClusterNone?: number | null;
}

/** Median, lowest and highest over the rounds. */
export interface Spread {
  median: number | null;
  min: number | null;
  max: number | null;
}

/**
 * A configuration against SCHED_NONE, round by round (both measured in the same round, one
 * after the other): the ratio of req/s, of the workers' CPU, and of the CPU per request.
 */
export interface Paired {
  config: string;
  load: string;
  rounds: number;
  rps: Spread;
  workersCores: Spread;
  cpuPerRequest: Spread;
}

export interface Throughput {
  rounds: number;
  secondsPerRun: number;
  runs: Array<Record<string, unknown>>;
  summary: Record<string, { label: string; workers: number; loads: Record<string, LoadSummary> }>;
  paired: Paired[];
}

export interface Stall {
  config: string;
  stalledSeconds: number;
  wrk: { rps: number; p99: number; max: number; failed: number } | null;
  client: { ok: number; rps: number; p99: number | null; max: number | null; failed: number; slowerThan1s: number };
}

export interface Change {
  config: string;
  kind: string;
  mode: 'ka' | 'close';
  changes: number;
  changesFailed: number;
  commandMs: { median: number | null; max: number | null };
  changeDetails: Array<{ start: number; end: number; ms: number; code: number; output?: string[]; masters?: Array<number | null> }>;
  wrk: { ok: number; failed: number; errorKinds: Record<string, number>; p99: number; max: number; rps: number } | null;
  client: {
    ok: number;
    failed: number;
    failedDuringChanges: number;
    errorKinds: Record<string, number>;
    p99: number | null;
    worstDuringChanges: number | null;
    worstOtherwise: number | null;
  };
  workersAfter: number;
  answersAfter: number | null;
}

export type Status =
  | { skipped: true; reason: string }
  | {
      skipped: false;
      workers: number;
      startupMs: number;
      cliBaselineMs: number | null;
      statusMs: { median: number | null; max: number | null };
      statusJsonMs: { median: number | null; max: number | null };
      metricsMs: { median: number | null; max: number | null };
      statusLines: number;
      jsonObjectsWithPidAndState: number | null;
      masterRssKb: number | null;
      failures: string[];
    };

export interface BenchResult {
  date: string;
  machine: { nproc: number; cpu: string; memoryGiB: number; os: string; kernel: string };
  versions: { node: string; tsmaster: string; tsmasterCommit: string; autocannon: string; wrk: string | null; pm2: string | null };
  loadAverageAtStart: number[];
  sysctl: { tcp_migrate_req: string | null; somaxconn: string | null };
  options: Options;
  notes: string[];
  pm2InstallSeconds?: number;
  listeningSockets?: Record<string, number | null>;
  loads?: Load[];
  throughput?: Throughput;
  stall?: Stall[];
  changes?: Change[];
  listeningSocketsAfterChanges?: Record<string, number | null>;
  upgradeReady?: { runs: number[]; median: number | null; min: number | null; max: number | null };
  status?: Status;
  deploy?: DeployCost;
  chatty?: Chatty;
  pinned?: Pinned;
  startup?: Startup;
  install?: InstallCost;
  reuseportDemo?: { skipped: true; reason: string } | { skipped: false; runs: DemoRun[] };
  loadAverageAtEnd?: number[];
  runSeconds?: number;
}
