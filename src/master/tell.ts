// The one place an outcome takes effect: its log line, what systemd, Prometheus, status and
// the control clients waiting on a reload learn of it. Plans decide the outcome and put in it
// what its telling needs; this does not look at the master's state to decide anything.
import { formatOutcome, outcomeLevel, type Outcome, type ReloadOutcome, type UpgradeEnd, type UpgradeOutcome } from '../outcomes.js';
import type { Master } from './master.js';

export function tell(m: Master, o: Outcome): void {
  m.log.log(outcomeLevel(o), formatOutcome(o));
  switch (o.event) {
    case 'upgrade-started':
    case 'upgrade-ready':
      return tellUpgradeWaiters(m, o);
    case 'reload-finished':
    case 'workers-restarted':
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}`);
      m.metrics?.changed('reload', 'ok');
      return answerReloadWaiters(m, o);
    case 'reload-failed':
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}, last reload failed`);
      m.metrics?.changed('reload', 'failed');
      return answerReloadWaiters(m, o);
    case 'upgrade-refused':
      // Kept for status, so that `-s upgrade` can say at once why nothing happens.
      m.lastRefusal = { reason: o.reason, at: Date.now() };
      return;
    case 'upgrade-failed':
      m.metrics?.changed('upgrade', 'failed');
      return answerUpgradeWaiters(m, o);
    case 'upgrade-rolling-back':
      // Never ready: the upgrade failed; ready, then gone: this master takes the service back.
      m.metrics?.changed('upgrade', o.ready ? 'rolled_back' : 'failed');
      m.lastRollback = { newPid: o.pid, reason: `new master process ${o.pid || '(not started)'} ${o.how}`, at: Date.now() };
      return tellUpgradeWaiters(m, o);
    case 'rolled-back':
      // No MAINPID=: this master stayed systemd's main process throughout (notify.ts).
      m.notifier.send('READY=1', `STATUS=${m.statusLine()}, upgrade rolled back`);
      return answerUpgradeWaiters(m, o);
    case 'upgrade-finished':
      return answerUpgradeWaiters(m, o);
    case 'generation-ready':
    case 'reload-refused':
    case 'reload-rolling-back':
      return;
  }
}

/** Answer the control clients waiting for the reload. */
export function answerReloadWaiters(m: Master, o: ReloadOutcome): void {
  for (const done of m.reloadWaiters.splice(0)) done(o);
}

/** The control clients waiting for the whole upgrade hear how far it got. */
function tellUpgradeWaiters(m: Master, o: UpgradeOutcome): void {
  for (const waiter of m.upgradeWaiters) waiter(o);
}

/** The upgrade is over (a refusal answers only its own client): every waiting client hears how, once. */
export function answerUpgradeWaiters(m: Master, o: UpgradeEnd): void {
  for (const waiter of m.upgradeWaiters.splice(0)) waiter(o);
}
