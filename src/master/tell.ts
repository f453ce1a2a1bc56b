// The one place an outcome takes effect: its log line, what systemd, Prometheus, status and
// the control clients waiting on a reload learn of it. Transitions decide the outcome; they
// do not write its line or tell anyone themselves.
import { formatOutcome, outcomeLevel, type Outcome, type ReloadOutcome } from '../outcomes.js';
import type { Master } from './master.js';

export function tell(m: Master, o: Outcome): void {
  m.log.log(outcomeLevel(o), formatOutcome(o));
  switch (o.event) {
    case 'reload-finished':
    case 'workers-restarted':
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}`);
      m.metrics?.changed('reload', 'ok');
      return settleReload(m, o);
    case 'reload-failed':
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
      m.metrics?.changed('reload', 'failed');
      return settleReload(m, o);
    case 'upgrade-refused':
      // Kept for status, so that `-s upgrade` can say at once why nothing happens.
      m.lastRefusal = { reason: o.reason, at: Date.now() };
      return;
    case 'upgrade-failed':
      m.metrics?.changed('upgrade', 'failed');
      return;
    case 'upgrade-rolling-back':
      // Never ready: the upgrade failed; ready, then gone: this master takes the service back.
      m.metrics?.changed('upgrade', m.upgrade?.ready ? 'rolled_back' : 'failed');
      m.lastRollback = { newPid: o.pid, reason: `new master process ${o.pid || '(not started)'} ${o.how}`, at: Date.now() };
      return;
    case 'rolled-back':
      // No MAINPID=: this master stayed systemd's main process throughout (notify.ts).
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}, upgrade rolled back`);
      return;
    case 'generation-ready':
    case 'reload-refused':
    case 'reload-rolling-back':
    case 'upgrade-started':
    case 'upgrade-ready':
      return;
  }
}

/** Answer the control clients waiting for the reload (a refused one answers only its own client). */
export function settleReload(m: Master, o: ReloadOutcome): void {
  for (const done of m.reloadWaiters.splice(0)) done(o);
}
