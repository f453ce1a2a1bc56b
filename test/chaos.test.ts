// A bounded chaos run inside `npm test` (about a minute): random operations from a seed
// under load, every invariant checked after each (test/helpers/chaos.ts). `npm run chaos`
// runs longer ones: `npm run chaos -- --seconds 600 --seed 42`.
import t from 'tap';
import { chaos } from './helpers/chaos.js';

const seconds = Number(process.env.CHAOS_SECONDS ?? 45);
// A fixed seed inside `npm test`, so that CI replays operations that have held here;
// `npm run chaos` picks a new one each run.
const seed = Number(process.env.CHAOS_SEED ?? 7);

t.test(`chaos: seed ${seed}, ${seconds} s of random operations under load, every invariant after each`, { timeout: (seconds + 240) * 1000 }, async (t) => {
  const r = await chaos(t, { seconds, seed });
  t.comment(`seed ${r.seed}: ${r.ops.length} operations, ${r.requests} requests, ${r.killedInFlight} failed in flight on a worker killed with SIGKILL, ${r.unexpected} other failures`);
  t.comment(`operations: ${r.ops.join(', ')}`);
  t.equal(r.unexpected, 0, 'no request failed but those in flight on a killed worker');
  t.ok(r.ops.length > 0);
});
