// The outcomes of what an operator asks a master to do (a reload, an upgrade), as events with
// fields, and the one wording each has in the error log. The master tells an outcome once
// (master/tell.ts); the log line, the control socket's answer, status and the CLI's
// messages all come from the event, and `parseOutcome` reads an event back from its log
// line, so tests and tools match events, never phrases: rewording a line here changes
// writer and readers together.
import type { LogLevel } from './config/types.js';

const TEMPLATES = {
  'generation-ready': { level: 'notice', text: 'generation {generation}: all {workers} worker(s) ready' },
  'reload-refused': { level: 'notice', text: 'reload ignored: {reason}' },
  'reload-finished': { level: 'notice', text: 'reload finished: generation {generation} serves, generation {previous} is stopping' },
  'reload-failed': { level: 'alert', text: 'reload failed: {reason}; generation {serving} keeps serving' },
  /** A batched reload failed part-way: the old generation takes its slots back before reload-failed. */
  'reload-rolling-back': { level: 'alert', text: 'reload failing: {reason}; generation {serving} takes its slots back {batch} at a time' },
  /** A reload after WINCH while an upgrade is under way (nginx's manual rollback): the same generation serves again. */
  'workers-restarted': { level: 'notice', text: 'starting the workers of generation {generation} again with its configuration' },
  'upgrade-refused': { level: 'notice', text: 'USR2 ignored: {reason}' },
  'upgrade-started': { level: 'notice', text: 'start new master process {pid}' },
  /** USR2 accepted but no new master could be started (the pidfile could not be moved). */
  'upgrade-failed': { level: 'alert', text: 'upgrade failed: {reason}' },
  'upgrade-ready': { level: 'notice', text: 'new master process {pid} is ready; WINCH and QUIT to this master ({self}) complete the upgrade' },
  'upgrade-rolling-back': { level: 'alert', text: 'new master process {pid} {how}; rolling back' },
  'rolled-back': { level: 'notice', text: 'rollback finished: master process {self} serves' },
  /** The upgrade a control client asked for is complete: the old master's workers are gone, and it exits now. */
  'upgrade-finished': { level: 'notice', text: 'upgrade finished: master process {pid} serves; master process {self} exits' },
} as const satisfies Record<string, { level: LogLevel; text: string }>;

export type OutcomeEvent = keyof typeof TEMPLATES;
export const OUTCOME_EVENTS = Object.keys(TEMPLATES) as OutcomeEvent[];

/** The `{field}` names of a template. */
type Fields<S extends string> = S extends `${string}{${infer F}}${infer Rest}` ? F | Fields<Rest> : never;

/** These fields are numbers (pids, generations, counts); every other field is text. */
const NUMERIC = new Set(['generation', 'workers', 'previous', 'serving', 'batch', 'pid', 'self']);
type FieldValue<F extends string> = F extends 'generation' | 'workers' | 'previous' | 'serving' | 'batch' | 'pid' | 'self' ? number : string;

/**
 * What an outcome carries beyond its line, for those it concerns: whether the new master of
 * a rollback had been ready (it had taken the service, so this is a rollback, not a failed
 * upgrade). Not in the line, so not read back by parseOutcome.
 */
interface Extras {
  'upgrade-rolling-back': { ready?: boolean };
}
type ExtraOf<E extends OutcomeEvent> = E extends keyof Extras ? Extras[E] : unknown;

export type Outcome = {
  [E in OutcomeEvent]: { event: E } & { [F in Fields<(typeof TEMPLATES)[E]['text']>]: FieldValue<F> } & ExtraOf<E>;
}[OutcomeEvent];

export type OutcomeOf<E extends OutcomeEvent> = Extract<Outcome, { event: E }>;

/** The outcomes that end a reload, and which of them a waiting `-s reload` takes as success. */
export type ReloadOutcome = OutcomeOf<'reload-finished' | 'workers-restarted' | 'reload-failed' | 'reload-refused'>;
export function reloadSucceeded(o: ReloadOutcome): boolean {
  return o.event === 'reload-finished' || o.event === 'workers-restarted';
}

/**
 * The outcomes of an upgrade a control client waits for, as they happen: progress (started,
 * ready, rolling back), then one that ends it: finished, or refused, failed, rolled back.
 */
export type UpgradeOutcome = OutcomeOf<'upgrade-started' | 'upgrade-ready' | 'upgrade-rolling-back' | UpgradeEnd['event']>;
export type UpgradeEnd = OutcomeOf<'upgrade-finished' | 'upgrade-refused' | 'upgrade-failed' | 'rolled-back'>;
export function endsUpgrade(o: UpgradeOutcome): o is UpgradeEnd {
  return o.event === 'upgrade-finished' || o.event === 'upgrade-refused' || o.event === 'upgrade-failed' || o.event === 'rolled-back';
}

export function outcomeLevel(o: Outcome): LogLevel {
  return TEMPLATES[o.event].level;
}

/** The outcome's log line. */
export function formatOutcome(o: Outcome): string {
  const fields = o as unknown as Record<string, string | number>;
  return TEMPLATES[o.event].text.replace(/\{(\w+)\}/g, (_, f: string) => String(fields[f]));
}

function escape(text: string): string {
  return text.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
}

/** One anchored pattern per template; text fields are greedy, as a reason may hold anything. */
const PATTERNS = OUTCOME_EVENTS.map((event) => {
  const names: string[] = [];
  const source = escape(TEMPLATES[event].text).replace(/\\?\{(\w+)\\?\}/g, (_, f: string) => {
    names.push(f);
    return NUMERIC.has(f) ? '(\\d+)' : '(.+)';
  });
  return { event, names, re: new RegExp(`^${source}$`) };
});

/** The event a log line tells, or null when it tells none. */
export function parseOutcome(text: string): Outcome | null {
  for (const p of PATTERNS) {
    const m = p.re.exec(text);
    if (!m) continue;
    const o: Record<string, string | number> = { event: p.event };
    p.names.forEach((f, i) => (o[f] = NUMERIC.has(f) ? Number(m[i + 1]) : m[i + 1]!));
    return o as unknown as Outcome;
  }
  return null;
}
