// The kinds of value directive arguments share: durations, sizes, integers, on/off, paths.

import { resolve } from 'node:path';
import { invalid } from './errors.js';
import type { Directive } from './parser.js';

/** Timers in Node cannot exceed 2^31-1 ms. */
const MAX_MS = 2 ** 31 - 1;

const TIME_UNITS: ReadonlyArray<[string, number]> = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1_000],
  ['ms', 1],
];

/**
 * nginx-style duration: `500ms`, `10s`, `1m`, `1h`, `1d`, combinations in decreasing order
 * (`1m30s`), or a plain number of seconds. Returns milliseconds, or null when invalid.
 */
export function parseDuration(text: string): number | null {
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const re = /(\d+)(ms|s|m|h|d)/y;
  let pos = 0;
  let total = 0;
  let lastRank = -1;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return null;
    const rank = TIME_UNITS.findIndex(([u]) => u === m[2]);
    if (rank <= lastRank) return null;
    lastRank = rank;
    total += Number(m[1]) * TIME_UNITS[rank]![1];
    pos = re.lastIndex;
  }
  return pos > 0 && Number.isSafeInteger(total) ? total : null;
}

/** A duration as the man page writes it: whole seconds as `10s`, anything else in `ms`. */
export function durationText(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Size: plain bytes or a `k`, `m`, `g` suffix (either case). Returns bytes, or null when invalid. */
export function parseSize(text: string): number | null {
  const m = /^(\d+)([kmg]?)$/i.exec(text);
  if (!m) return null;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'];
  const v = Number(m[1]) * mult;
  return Number.isSafeInteger(v) ? v : null;
}

export function int(d: Directive, text: string, min: number, max: number, signed = false): number {
  if (!(signed ? /^[+-]?\d+$/ : /^\d+$/).test(text)) invalid(d, text);
  const v = Number(text);
  if (v < min || v > max) invalid(d, text, `it must be between ${min} and ${max}`);
  return v;
}

export function flag(d: Directive, text: string): boolean {
  if (text === 'on') return true;
  if (text === 'off') return false;
  invalid(d, text, 'it must be "on" or "off"');
}

export function flagText(on: boolean): string {
  return on ? 'on' : 'off';
}

/** A duration in milliseconds, at least `min` and short enough for a Node timer. */
export function duration(d: Directive, text: string, min: number): number {
  const ms = parseDuration(text);
  if (ms === null) invalid(d, text);
  if (ms < min) invalid(d, text, min === 1 ? 'it must be greater than 0' : `it must be at least ${min}ms`);
  if (ms > MAX_MS) invalid(d, text, `it must be at most ${MAX_MS}ms`);
  return ms;
}

/** An absolute path; a relative one is taken from the prefix. */
export function path(d: Directive, text: string, prefix: string): string {
  if (text === '') invalid(d, text);
  return resolve(prefix, text);
}
