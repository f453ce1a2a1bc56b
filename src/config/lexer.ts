// Tokenizer for tsmaster.conf(5): the nginx configuration syntax.
//
//  - words are separated by blanks (space, tab, CR, LF); `;`, `{` and `}` are tokens of their own;
//  - `#` at the start of a token starts a comment that runs to the end of the line
//    (inside a word it is an ordinary character: `a#b` is one word);
//  - a word may be quoted with "..." or '...': the quotes are removed, blanks, `;`, `#`,
//    `{` and `}` lose their meaning, and the string may span lines. After the closing quote
//    there must be a blank, `;`, `{`, `}` or the end of the input;
//  - a backslash protects the next character from any special meaning, quoted or not; when the
//    word is finished the escapes \" \' \\ \n \r \t are replaced by the character they name,
//    and every other backslash is kept as written (as nginx does);
//  - `$` is an ordinary character (tsmaster has no variables).
// Every token carries the file and the 1-based line on which it starts.

import { COMMAND_LINE, fail } from './errors.js';

export type Token =
  | { type: 'word'; value: string; quoted: boolean; file: string; line: number }
  | { type: ';' | '{' | '}'; file: string; line: number };

const BLANK = new Set([' ', '\t', '\r', '\n']);

function unescape(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i]!;
    if (ch !== '\\' || i + 1 >= raw.length) {
      out += ch;
      continue;
    }
    const next = raw[i + 1]!;
    switch (next) {
      case '"':
      case "'":
      case '\\':
        out += next;
        i++;
        break;
      case 'n':
        out += '\n';
        i++;
        break;
      case 'r':
        out += '\r';
        i++;
        break;
      case 't':
        out += '\t';
        i++;
        break;
      default:
        out += ch + next;
        i++;
    }
  }
  return out;
}

/**
 * Splits `text` into tokens. `file` names the source in tokens and errors (an absolute path, or
 * "command line" for -g). Throws ConfigError on an unterminated string, a character glued to a
 * closing quote, a trailing backslash or a NUL character.
 */
export function tokenize(text: string, file: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  const n = text.length;
  if (text.charCodeAt(0) === 0xfeff) i = 1; // UTF-8 byte order mark
  /** A backslash and the character it protects, kept raw for unescape(); null at the end of the text. */
  const escapePair = (): string | null => {
    if (i + 1 >= n) return null;
    const next = text[i + 1]!;
    if (next === '\0') fail('unexpected NUL character', file, line);
    if (next === '\n') line++;
    i += 2;
    return `\\${next}`;
  };

  while (i < n) {
    const ch = text[i]!;
    if (ch === '\n') {
      line++;
      i++;
      continue;
    }
    if (BLANK.has(ch)) {
      i++;
      continue;
    }
    if (ch === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }
    if (ch === ';' || ch === '{' || ch === '}') {
      tokens.push({ type: ch, file, line });
      i++;
      continue;
    }
    const startLine = line;
    if (ch === '"' || ch === "'") {
      const quote = ch;
      i++;
      let raw = '';
      let closed = false;
      while (i < n) {
        const c = text[i]!;
        if (c === '\0') fail('unexpected NUL character', file, line);
        if (c === '\\') {
          const pair = escapePair();
          if (pair === null) break;
          raw += pair;
          continue;
        }
        if (c === quote) {
          closed = true;
          i++;
          break;
        }
        if (c === '\n') line++;
        raw += c;
        i++;
      }
      if (!closed) {
        fail(
          file === COMMAND_LINE ? 'unexpected end of parameter, unterminated quoted string' : 'unexpected end of file, unterminated quoted string',
          file,
          startLine,
        );
      }
      if (i < n) {
        const after = text[i]!;
        if (!BLANK.has(after) && after !== ';' && after !== '{' && after !== '}') {
          fail(`unexpected "${after}"`, file, line);
        }
      }
      tokens.push({ type: 'word', value: unescape(raw), quoted: true, file, line: startLine });
      continue;
    }
    // unquoted word
    let raw = '';
    while (i < n) {
      const c = text[i]!;
      if (c === '\0') fail('unexpected NUL character', file, line);
      if (c === '\\') {
        const pair = escapePair();
        if (pair === null) fail(file === COMMAND_LINE ? 'unexpected end of parameter after "\\"' : 'unexpected end of file after "\\"', file, line);
        raw += pair;
        continue;
      }
      if (BLANK.has(c) || c === ';' || c === '{' || c === '}') break;
      raw += c;
      i++;
    }
    tokens.push({ type: 'word', value: unescape(raw), quoted: false, file, line: startLine });
  }
  return tokens;
}
