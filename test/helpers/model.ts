// Models of a master (src/master/model.ts) written by hand, for the in-process plan tests:
// a master with generation 3 serving two ready workers unless told otherwise.
import { buildConfig } from '../../src/config/build.js';
import { parseText } from '../../src/config/parser.js';
import type { Config } from '../../src/config/types.js';
import type { GenerationModel, Model, WorkerModel } from '../../src/master/model.js';
import type { Effect } from '../../src/master/effects.js';
import type { MasterPhase, Phase } from '../../src/master/phase.js';

export const NOW = 1_000_000;

export function config(directives = ''): Config {
  const file = '/etc/tsmaster/test.conf';
  return buildConfig(parseText(`${directives}\nlisten 8080;\napp ${process.execPath};\n`, file, { includeBase: '/etc/tsmaster' }), { file, prefix: '/etc/tsmaster' });
}

const CONFIG = config('worker_processes 2;');

export function generation(over: Partial<GenerationModel> = {}): GenerationModel {
  return { id: 3, role: 'active', target: 2, slots: null, everReady: true, backoffMs: 0, respawning: false, memoryWarned: false, config: CONFIG, sockets: [{ key: 'tcp:0.0.0.0:8080', reuseport: false }], groupSizes: {}, ...over };
}

export function worker(over: Partial<WorkerModel> = {}): WorkerModel {
  return {
    pid: 42,
    slot: 0,
    generation: 3,
    state: 'ready',
    recycling: false,
    startedAt: NOW - 60_000,
    readyAt: NOW - 59_000,
    lastPong: NOW - 500,
    killedFor: null,
    startError: null,
    killReason: null,
    group: false,
    handlers: true,
    notified: false,
    connected: true,
    rss: 50e6,
    startRss: 40e6,
    stopDeadline: null,
    ...over,
  };
}

export function model(over: Partial<Model> = {}): Model {
  return {
    now: NOW,
    pid: 9,
    phase: { name: 'running' },
    config: CONFIG,
    current: 3,
    firstGeneration: 1,
    nextGeneration: 4,
    generations: [generation()],
    workers: [worker({ pid: 41, slot: 0 }), worker({ pid: 42, slot: 1 })],
    upgrade: null,
    upgradeAsked: false,
    batches: null,
    oldMaster: null,
    parentListens: false,
    ready: true,
    systemdMain: true,
    socketGroups: [{ key: 'tcp:0.0.0.0:8080', reuseport: false }],
    metricsKey: null,
    onTerminal: false,
    exiting: false,
    ...over,
  };
}

/** The phase the table's key stands for (a stop's code 1 for a fast one, a reload that returns to running). */
export function phase(k: MasterPhase): Phase {
  if (k === 'stopping-graceful') return { name: 'stopping', mode: 'graceful', code: 0 };
  if (k === 'stopping-fast') return { name: 'stopping', mode: 'fast', code: 1 };
  if (k === 'reloading') return { name: 'reloading', returnTo: 'running' };
  return { name: k };
}

/** The effects that stop a worker (stops.ts): draining, its signal, the kill timer. */
export function stopping(pid: number, signal: NodeJS.Signals, ms: number, now = NOW): Effect[] {
  return [
    { do: 'set-worker', pid, set: { state: 'draining', stopDeadline: now + ms } },
    { do: 'signal', pid, signal },
    { do: 'timer', timer: { kind: 'kill', pid }, ms },
  ];
}

/** A heartbeat request as the model's clock stamps it. */
export function ping(pid: number, now = NOW): Effect {
  return { do: 'send', to: pid, msg: { t: 'ping', seq: now } };
}
