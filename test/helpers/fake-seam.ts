// The master's seam (src/master/seam.ts) made of records: workers and a new master that are
// objects, a clock and timers the test moves, pidfile operations written down. A real Master
// runs over it in-process, so whole reloads and upgrades are driven event by event through
// Master.handle (step + settle + the executor) in milliseconds, as tableflip's testEnv does.
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { Master } from '../../src/master/master.js';
import type { MasterEvent } from '../../src/master/event-queue.js';
import type { Seam } from '../../src/master/seam.js';
import { prepareGeneration } from '../../src/master/supervise.js';
import { parseOutcome, type Outcome } from '../../src/outcomes.js';
import type { ParentMessage } from '../../src/protocol.js';
import { tempDir, type Teardown } from './tmp.js';

export class FakeChild extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  connected = true;
  readonly sent: unknown[] = [];
  constructor(
    readonly pid: number,
    private readonly world: FakeWorld,
  ) {
    super();
  }
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    this.world.signals.push({ pid: this.pid, signal });
    return true;
  }
  send(msg: unknown, cb?: () => void): boolean {
    this.sent.push(msg);
    cb?.();
    return true;
  }
}

interface FakeTimer {
  at: number;
  fire: () => void;
  cancelled: boolean;
}

export class FakeWorld {
  now = 1_000_000;
  private nextPid = 1000;
  /** Every worker started: pid, generation, slot. */
  readonly spawned: Array<{ pid: number; generation: number; slot: number }> = [];
  readonly signals: Array<{ pid: number; signal: NodeJS.Signals }> = [];
  readonly pidfileOps: string[] = [];
  readonly toParent: ParentMessage[] = [];
  readonly timers: FakeTimer[] = [];
  newMaster: FakeChild | null = null;
  /** Make the next worker starts fail (spawn() throwing, as with EMFILE). */
  failSpawns = false;

  readonly seam: Seam = {
    now: () => this.now,
    after: (ms, fire) => {
      const timer = { at: this.now + ms, fire, cancelled: false };
      this.timers.push(timer);
      return { cancel: () => (timer.cancelled = true) };
    },
    spawnWorker: (opts) => {
      if (this.failSpawns) throw Object.assign(new Error('spawn EMFILE'), { code: 'EMFILE' });
      const child = new FakeChild(this.nextPid++, this);
      this.spawned.push({ pid: child.pid, generation: opts.generation, slot: opts.slot });
      const channel = { connected: true, send: () => true, close: () => undefined };
      return { child, channel } as unknown as ReturnType<Seam['spawnWorker']>;
    },
    spawnMaster: () => {
      this.newMaster = new FakeChild(this.nextPid++, this);
      return this.newMaster as unknown as ReturnType<Seam['spawnMaster']>;
    },
    pidfile: {
      writePid: (file) => void this.pidfileOps.push(`write ${path.basename(file)}`),
      moveToOldbin: (file) => void this.pidfileOps.push(`to-oldbin ${path.basename(file)}`),
      restoreFromOldbin: (file) => void this.pidfileOps.push(`from-oldbin ${path.basename(file)}`),
      removeIfOurs: (file) => void this.pidfileOps.push(`remove ${path.basename(file)}`),
      isLiveMaster: () => false,
    },
    parent: { connected: () => false, send: (msg) => void this.toParent.push(msg), disconnect: () => undefined },
  };

  /** Move the clock; the timers due fire (their events go to the master's queue). */
  advance(ms: number): void {
    this.now += ms;
    for (const timer of this.timers) {
      if (!timer.cancelled && timer.at <= this.now) {
        timer.cancelled = true;
        timer.fire();
      }
    }
  }

  /** Timers armed and not fired or cancelled, as ms from now. */
  pending(): number[] {
    return this.timers.filter((x) => !x.cancelled).map((x) => x.at - this.now);
  }
}

export interface FakeMaster {
  m: Master;
  world: FakeWorld;
  dir: string;
  /** One event, as the loop would hand it over; then every event it queued (timers, children), in order. */
  send(ev: MasterEvent): void;
  /** Workers alive now (the master's table), by generation and slot. */
  workers(): Array<{ pid: number; generation: number; slot: number; state: string }>;
  ready(pid: number): void;
  exit(pid: number, code?: number | null, signal?: NodeJS.Signals | null): void;
  /** The outcomes told in the error log so far. */
  outcomes(): Outcome[];
  log(): string;
  /** Write a new config for the next HUP. */
  configure(directives: string): void;
  /** Move the fake clock: the timers due post their events, which the master handles. */
  advance(ms: number): void;
}

/** A master over the fake seam, its first generation started (not ready yet). */
export function fakeMaster(t: Teardown, directives: string): FakeMaster {
  const dir = tempDir(t, 'tsm-step-');
  fs.writeFileSync(path.join(dir, 'app.js'), '');
  const file = path.join(dir, 'tsmaster.conf');
  const configure = (d: string) =>
    fs.writeFileSync(file, `pid ${dir}/pid;\nerror_log ${dir}/error.log debug;\nlisten unix:${dir}/s.sock;\napp ${dir}/app.js;\n${d}\n`);
  configure(directives);
  const world = new FakeWorld();
  const config = loadConfig({ file, prefix: dir });
  const m = new Master(config, { configFile: file, prefix: dir, argv: [process.execPath, 'main.js'], title: 'tsmaster: test', onTerminal: false, daemon: false, seam: world.seam });
  t.teardown(() => {
    m.sockets.closeAll(true);
    m.log.close();
  });
  const drain = () => {
    for (;;) {
      const queued = (m.queue as unknown as { items: MasterEvent[] }).items.shift();
      if (!queued) return;
      m.handle(queued);
    }
  };
  const send = (ev: MasterEvent) => {
    m.handle(ev);
    drain();
  };
  const sockets = m.sockets.acquire(config.listens, config.workerProcesses);
  send({ type: 'start', gen: prepareGeneration(config, sockets, 'active') });
  const workers = () => m.table.all().map((w) => ({ pid: w.pid, generation: w.generation, slot: w.slot, state: w.state }));
  const logText = () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
  return {
    m,
    world,
    dir,
    send,
    workers,
    ready: (pid) => {
      send({ type: 'worker-message', pid, msg: { t: 'hello' } });
      send({ type: 'worker-message', pid, msg: { t: 'ready' } });
    },
    exit: (pid, code = 0, signal = null) => {
      const child = m.table.get(pid)?.child as unknown as FakeChild | undefined;
      if (child) child.exitCode = code;
      send({ type: 'worker-exit', pid, code, signal });
    },
    outcomes: () =>
      logText()
        .split('\n')
        .map((l) => parseOutcome(l.replace(/^.*?\[\w+\] \d+#\d+: /, '')))
        .filter((o): o is Outcome => o !== null),
    log: logText,
    configure,
    advance: (ms) => {
      world.advance(ms);
      drain();
    },
  };
}
