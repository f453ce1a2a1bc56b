// The outcomes vocabulary in-process: every event's line reads back as the same event, and no
// line of one event reads as another, whatever a free-text reason holds.
import fs from 'node:fs';
import t from 'tap';
import { OUTCOME_EVENTS, formatOutcome, outcomeLevel, parseOutcome, reloadSucceeded, type Outcome } from '../src/outcomes.js';

/** A sample of each event, with reasons that look like other lines on purpose. */
const SAMPLES: Outcome[] = [
  { event: 'generation-ready', generation: 3, workers: 64 },
  { event: 'reload-refused', reason: 'the master is reloading' },
  { event: 'reload-finished', generation: 7, previous: 6 },
  { event: 'reload-failed', reason: 'listen "x" in /etc/t.conf:3: bind EADDRINUSE; generation 9 keeps serving', serving: 2 },
  { event: 'reload-rolling-back', reason: 'worker process 12 of generation 3 exited with code 1 before it was ready (in batch 3 of 4)', serving: 2, batch: 1 },
  { event: 'workers-restarted', generation: 4 },
  { event: 'upgrade-refused', reason: 'an upgrade is under way (new master process 77)' },
  { event: 'upgrade-started', pid: 4242 },
  { event: 'upgrade-failed', reason: 'rename() "/run/t.pid" failed: EACCES' },
  { event: 'upgrade-ready', pid: 4242, self: 4100 },
  { event: 'upgrade-rolling-back', pid: 4242, how: 'exited on signal SIGKILL' },
  { event: 'rolled-back', self: 4100 },
  { event: 'upgrade-finished', pid: 4242, self: 4100 },
];

t.test('every event has a sample here, and its line reads back as itself', async (t) => {
  t.same(SAMPLES.map((o) => o.event).sort(), [...OUTCOME_EVENTS].sort(), 'one sample per event');
  for (const o of SAMPLES) {
    const line = formatOutcome(o);
    t.notMatch(line, /\{\w+\}|undefined/, `${o.event}: every field filled in`);
    t.same(parseOutcome(line), o, `${o.event}: "${line}"`);
  }
});

t.test('lines that tell no outcome read as none', async (t) => {
  for (const line of ['start worker process 12 (generation 2, slot 0)', 'reload finished', 'generation x: all 2 worker(s) ready', '']) t.equal(parseOutcome(line), null, JSON.stringify(line));
});

t.test('failures are alerts, the rest notices; a reload succeeds on finished or restarted workers', async (t) => {
  for (const o of SAMPLES) t.equal(outcomeLevel(o), /failed|rolling-back/.test(o.event) ? 'alert' : 'notice', o.event);
  t.ok(reloadSucceeded({ event: 'reload-finished', generation: 2, previous: 1 }));
  t.ok(reloadSucceeded({ event: 'workers-restarted', generation: 2 }));
  t.notOk(reloadSucceeded({ event: 'reload-failed', reason: 'x', serving: 1 }));
  t.notOk(reloadSucceeded({ event: 'reload-refused', reason: 'the master is stopping' }));
});

t.test('every event is documented with its line in README.md and tsmaster(8)', async (t) => {
  const readme = fs.readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const man = fs.readFileSync(new URL('../man/tsmaster.8', import.meta.url), 'utf8');
  for (const event of OUTCOME_EVENTS) {
    t.match(readme, new RegExp(`^\\| \`${event}\` \\|`, 'm'), `README: ${event}`);
    t.match(man, new RegExp(`^\\.B ${event}\\n`, 'm'), `tsmaster(8): ${event}`);
  }
});
