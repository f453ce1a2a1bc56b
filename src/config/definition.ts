// What a directive definition holds: its documentation, the parser of one occurrence and its
// default. The default is written once: as a typed value the man page text is made from, or,
// when it needs the prefix, as config text the directive's own parser types.

import type { Directive } from './parser.js';
import type { Config } from './types.js';

/** A directive as tsmaster.conf(5) documents it (test/man.test.ts checks the page against it). */
export interface DirectiveDef {
  /** Directive name as written in the file. */
  readonly name: string;
  /** Syntax line as shown in the man page, e.g. `pid path;`. */
  readonly syntax: string;
  /** Default value text as shown in the man page after `Default:`; `none` when there is none. */
  readonly default: string;
  /** One-line description. */
  readonly doc: string;
  /** Smallest and largest number of arguments (Infinity = no limit). */
  readonly minArgs: number;
  readonly maxArgs: number;
  /** May appear more than once. */
  readonly multiple: boolean;
}

/** A directive buildConfig applies. `parse` gets one occurrence and the absolute prefix. */
export interface Definition<T> extends DirectiveDef {
  parse(d: Directive, prefix: string): T;
  /** Refuses an occurrence that clashes with the earlier ones of a repeatable directive. */
  check?(item: T, earlier: readonly T[], d: Directive): void;
}

/** Given at most once; `fallback` is its typed default. */
export interface Single<T> extends Definition<T> {
  readonly multiple: false;
  fallback(prefix: string): T;
}

/** May be given more than once; without it, there is nothing (`none`). */
export interface Repeated<T> extends Definition<T> {
  readonly multiple: true;
}

/** Given at most once; without it, the value is made from other directives' (the config so far). */
export interface Following<T, K extends keyof Config> extends Definition<T> {
  readonly multiple: false;
  follow(config: Pick<Config, K>): T;
}

/** A typed default and its man page text. */
export interface Default<T> {
  readonly text: string;
  readonly value: T;
}

export function shown<const T>(value: T, show: (value: T) => string): Default<T> {
  return { text: show(value), value };
}

export const none: Default<null> = { text: 'none', value: null };
export const off: Default<null> = { text: 'off', value: null };

interface Spec<T> {
  readonly name: string;
  readonly syntax: string;
  readonly doc: string;
  /** Smallest and largest number of arguments; exactly one when left out. */
  readonly args?: readonly [number, number];
  parse(d: Directive, prefix: string): T;
}

/** `text` as the arguments of an occurrence of `name`, for a parser to type a default. */
export function occurrence(name: string, text: string): Directive {
  return { name, args: text.split(' '), file: 'default', line: 0 };
}

function arity(args: Spec<unknown>['args']): { minArgs: number; maxArgs: number } {
  const [minArgs, maxArgs] = args ?? [1, 1];
  return { minArgs, maxArgs };
}

/** A directive given at most once, its default a typed value or config text for `parse`. */
export function single<T>({ args, default: def, ...spec }: Spec<T> & { readonly default: Default<T> | string }): Single<T> {
  return {
    ...spec,
    ...arity(args),
    multiple: false,
    default: typeof def === 'string' ? def : def.text,
    fallback: typeof def === 'string' ? (prefix) => spec.parse(occurrence(spec.name, def), prefix) : () => def.value,
  };
}

export function repeated<T>({ args, ...spec }: Spec<T> & Pick<Repeated<T>, 'check'>): Repeated<T> {
  return { ...spec, ...arity(args), multiple: true, default: none.text };
}

/** A directive given at most once whose default follows others; `default` is its man page text. */
export function following<T, K extends keyof Config>({ args, ...spec }: Spec<T> & Pick<Following<T, K>, 'default' | 'follow'>): Following<T, K> {
  return { ...spec, ...arity(args), multiple: false };
}
