// The master's table (src/master/phase.ts) in-process: every phase, upgrade phase and
// command has the answer written out here, refusals and their log lines included.
import t from 'tap';
import { COMMANDS, PID1_REFUSAL, UPGRADE_PHASES, decide, upgradePhase, type Command, type MasterPhase, type UpgradePhase } from '../src/master/phase.js';
import { planCommand } from '../src/master/plans.js';
import { model, phase as phaseOf } from './helpers/model.js';
import { formatOutcome, parseOutcome } from '../src/outcomes.js';

const PHASES: MasterPhase[] = ['starting', 'running', 'reloading', 'draining', 'stopping-graceful', 'stopping-fast'];
const UPGRADES = UPGRADE_PHASES;

/** What the table must answer, written as the rules an operator reads in tsmaster(8). */
function expected(phase: MasterPhase, upgrade: UpgradePhase, cmd: Command, pid1: boolean): string {
  const word = phase.startsWith('stopping') ? 'stopping' : phase;
  const stopping = phase.startsWith('stopping');
  const upgrading = upgrade === 'starting' || upgrade === 'ready' || upgrade === 'killing';
  switch (cmd) {
    case 'reload':
      if (stopping || phase === 'reloading') return `refuse: reload ignored: the master is ${word}`;
      return phase === 'draining' && upgrading ? 'go: restart-workers' : 'go: reload';
    case 'upgrade':
      if (upgrading) return 'refuse: USR2 ignored: an upgrade is under way (new master process 77)';
      if (upgrade === 'new') return 'refuse: USR2 ignored: the old master process 77 is still running';
      if (phase !== 'running' && phase !== 'draining') return `refuse: USR2 ignored: the master is ${word}`;
      return pid1 ? `refuse: USR2 ignored: ${PID1_REFUSAL}` : 'go: upgrade';
    case 'drain':
      return stopping || phase === 'reloading' || phase === 'starting' ? `refuse: workers not drained: the master is ${word}` : 'go: drain';
    case 'graceful-stop':
      return phase === 'stopping-fast' ? 'refuse: already exiting' : phase === 'stopping-graceful' ? 'refuse: already shutting down' : 'go: graceful-stop';
    case 'fast-stop':
      return phase === 'stopping-fast' ? 'quiet: already exiting' : 'go: fast-stop';
    case 'reopen':
      return 'go: reopen';
    case 'add-worker':
    case 'remove-worker':
      return phase === 'running' ? `go: ${cmd}` : `refuse: worker count not changed: the master is ${word}`;
  }
}

t.test('the upgrade phase: one vocabulary, from what the master knows of its upgrade', async (t) => {
  t.equal(upgradePhase(null, false), 'none');
  t.equal(upgradePhase(null, true), 'new', 'this is the new master and its old one runs');
  t.equal(upgradePhase({ ready: false, killing: false }, false), 'starting');
  t.equal(upgradePhase({ ready: true, killing: false }, false), 'ready');
  t.equal(upgradePhase({ ready: false, killing: true }, false), 'killing', 'not ready in time: being stopped');
  t.same(UPGRADE_PHASES, ['none', 'starting', 'ready', 'killing', 'new']);
});

t.test('every (phase, upgrade phase, command) has the answer the rules give', async (t) => {
  let n = 0;
  for (const phase of PHASES) {
    for (const upgrade of UPGRADES) {
      for (const cmd of COMMANDS) {
        for (const pid1 of [false, true]) {
          const d = decide({ phase, upgrade, partner: upgrade === 'none' ? undefined : 77, pid1 }, cmd);
          const got = 'go' in d ? `go: ${d.go}` : `${d.quiet ? 'quiet' : 'refuse'}: ${d.refuse.line}`;
          t.equal(got, expected(phase, upgrade, cmd, pid1), `${phase} / upgrade ${upgrade} / ${cmd}${pid1 ? ' / PID 1' : ''}`);
          n++;
        }
      }
    }
  }
  t.equal(n, PHASES.length * UPGRADES.length * COMMANDS.length * 2);
});

t.test('a refused upgrade or reload is an outcome with its bare reason (what status keeps for -s upgrade)', async (t) => {
  const d = decide({ phase: 'reloading', upgrade: 'none', pid1: false }, 'upgrade');
  const outcome = { event: 'upgrade-refused', reason: 'the master is reloading' } as const;
  t.same(d, { refuse: { line: formatOutcome(outcome), reason: outcome.reason, outcome } });
  t.same(parseOutcome('refuse' in d ? d.refuse.line : ''), outcome, 'its log line reads back as the event');
  const r = decide({ phase: 'stopping-graceful', upgrade: 'none', pid1: false }, 'reload');
  t.match(r, { refuse: { outcome: { event: 'reload-refused', reason: 'the master is stopping' } } });
  const w = decide({ phase: 'reloading', upgrade: 'none', pid1: false }, 'drain');
  t.ok('refuse' in w && w.refuse.outcome === undefined, 'other refusals are log lines only');
});

t.test('every transition the table can choose has a plan that does something', async (t) => {
  for (const phase of PHASES) for (const upgrade of UPGRADES) for (const cmd of COMMANDS) {
    const d = decide({ phase, upgrade, partner: 1, pid1: false }, cmd);
    if (!('go' in d)) continue;
    const up = upgrade === 'none' || upgrade === 'new' ? null : { pid: 1, ready: upgrade === 'ready', killing: upgrade === 'killing', draining: null };
    const prepared = d.go === 'reload' ? { reload: { error: 'x', bound: false } } : d.go === 'upgrade' ? { upgrade: { error: 'x' } } : null;
    t.ok(planCommand(model({ phase: phaseOf(phase), upgrade: up }), d.go, 0, prepared).length > 0, `${phase}/${upgrade}/${cmd}: ${d.go}`);
  }
});
