import type { MasterEvent } from '../master/event-queue.js';
import type { Master } from '../master/master.js';
import type { Upgrade } from '../master/upgrade.js';
import { ask } from './client.js';

/** How long an exiting old master waits for the new one to take its last counts. */
const HANDOVER_MS = 2000;

/**
 * The old master of an upgrade, as it exits: the totals went to the new master with the
 * sockets at USR2, and this sends what was counted since (requests its workers served
 * until they drained, restarts). The new master takes it only from the pid that started it.
 */
export async function handOverTotals(m: Master, up: Upgrade, path: string): Promise<void> {
  const totals = {
    requests: Math.max(0, m.totals.requests - up.totalsAtStart.requests),
    restarts: Math.max(0, m.totals.restarts - up.totalsAtStart.restarts),
  };
  try {
    const res = await ask(path, { cmd: 'handover', totals }, HANDOVER_MS);
    if (res.ok) m.log.info(`handed ${totals.requests} request(s) and ${totals.restarts} restart(s) counted since USR2 to new master process ${up.pid}`);
    else m.log.warn(`counts since USR2 not handed to new master process ${up.pid}: ${res.error}`);
  } catch (err) {
    m.log.warn(`counts since USR2 not handed to new master process ${up.pid}: ${(err as Error).message}`);
  }
}

/** The new master: add what the old one counted after USR2 (an event, decided in the loop). */
export function addHandedOver(m: Master, ev: Extract<MasterEvent, { type: 'control-handover' }>): void {
  m.totals.requests += ev.totals.requests;
  m.totals.restarts += ev.totals.restarts;
  m.log.info(`old master process ${ev.pid} handed over ${ev.totals.requests} request(s) and ${ev.totals.restarts} restart(s)`);
  ev.done();
}
