// The signal table, in-process: every master signal has a meaning, and term_shutdown
// decides what TERM means.
import t from 'tap';
import { MASTER_SIGNALS } from '../src/master/event-queue.js';
import { planCommand } from '../src/master/plans.js';
import { SIGNAL_TABLE, meaningOf } from '../src/master/signals.js';
import { model } from './helpers/model.js';

t.test('every signal the master subscribes to has one meaning', async (t) => {
  t.same(Object.keys(SIGNAL_TABLE).sort(), [...MASTER_SIGNALS].sort());
  for (const s of MASTER_SIGNALS) t.ok(SIGNAL_TABLE[s].action.length > 0, `${s}: ${SIGNAL_TABLE[s].action}`);
});

t.test('term_shutdown: TERM is the fast stop, or QUIT\'s graceful one; INT is always fast', async (t) => {
  t.equal(meaningOf('SIGTERM', 'fast'), SIGNAL_TABLE.SIGTERM);
  const graceful = meaningOf('SIGTERM', 'graceful');
  t.equal(graceful.command, 'graceful-stop', 'TERM asks for the graceful shutdown');
  t.equal(graceful.action, 'shutting down (term_shutdown graceful)');
  t.equal(meaningOf('SIGINT', 'graceful'), SIGNAL_TABLE.SIGINT, 'INT stays fast');
  t.equal(meaningOf('SIGQUIT', 'fast').command, 'graceful-stop');
  const plan = planCommand(model(), graceful.command);
  t.match(plan.slice(0, 2), [{ do: 'notify' }, { do: 'set', set: { phase: { name: 'stopping', mode: 'graceful', code: 0 } } }], 'which the graceful shutdown carries out');
  t.same(plan.filter((e) => e.do === 'signal').map((e) => 'signal' in e && e.signal), ['SIGQUIT', 'SIGQUIT']);
});
