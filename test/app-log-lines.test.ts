// What a Node worker's app writes to stdout and stderr, line by line, starts with the time,
// the stream, the worker's pid and its slot (worker_log_prefix, issue 24 item 5); the worker
// stamps its own lines, so the master stays out of the data path. In-process: the stamping;
// real processes: the worker log with and without the prefix.
import fs from 'node:fs';
import t from 'tap';
import { linePrefix, stampLines } from '../src/worker/output.js';
import { app, freePort, get, startMaster, workersOf } from './helpers/master.js';

t.test('stampLines: one prefix per line, however the line was written', async (t) => {
  const run = (writes: string[]) => {
    let atLineStart = true;
    let out = '';
    for (const w of writes) {
      const r = stampLines(Buffer.from(w), atLineStart, '> ');
      atLineStart = r.atLineStart;
      out += r.data.toString();
    }
    return out;
  };
  t.equal(run(['a\n']), '> a\n');
  t.equal(run(['a\nb\n']), '> a\n> b\n', 'two lines in one write');
  t.equal(run(['pie', 'ce\n', 'next\n']), '> piece\n> next\n', 'a line in pieces: one prefix');
  t.equal(run(['a\n\nb\n']), '> a\n> \n> b\n', 'an empty line is a line');
  t.equal(run(['no newline', '']), '> no newline', 'an empty write changes nothing');
  t.equal(run(['x\ny']), '> x\n> y');
  t.same(stampLines(Buffer.from([0xff, 0x0a, 0xfe]), true, '> ').data, Buffer.from([0x3e, 0x20, 0xff, 0x0a, 0x3e, 0x20, 0xfe]), 'bytes, not text');
});

t.test('linePrefix: nginx time, the stream, pid and slot', async (t) => {
  t.equal(linePrefix('stderr', { pid: 1240, slot: 3 }, new Date(2026, 11, 4, 9, 5, 7)), '2026/12/04 09:05:07 [stderr] worker 1240 slot 3: ');
});

const STAMP = String.raw`\d{4}/\d\d/\d\d \d\d:\d\d:\d\d`;

for (const prefix of ['on', 'off'] as const) {
  t.test(`worker_log_prefix ${prefix}: console.log, pieces, Buffers and console.error in the worker log`, async (t) => {
    const port = await freePort();
    const m = await startMaster(t, {
      conf: `worker_processes 2;\n${prefix === 'off' ? 'worker_log_prefix off;\n' : ''}listen 127.0.0.1:${port};\napp ${app('writes-lines.mjs')};\n`,
    });
    const slots = new Map<number, number>();
    for (const line of fs.readFileSync(m.log, 'utf8').split('\n')) {
      const x = /start worker process (\d+) \(generation 1, slot (\d+)\)$/.exec(line);
      if (x) slots.set(Number(x[1]), Number(x[2]));
    }
    const served = new Set<number>();
    for (let i = 0; i < 6; i++) served.add(Number((await get({ port, path: `/?m=m${i}` })).body));
    t.ok([...served].every((pid) => workersOf(m.masterPid).includes(pid)));
    const text = fs.readFileSync(m.log, 'utf8');
    for (let i = 0; i < 6; i++) {
      const lines = text.split('\n').filter((l) => l.endsWith(`m${i}`));
      t.equal(lines.length, 6, `m${i}: six lines`);
      for (const line of lines) {
        if (prefix === 'off') {
          t.match(line, new RegExp(`^(log|piece-|first|second|buffer|error) ?m${i}$`), 'as written');
          continue;
        }
        const x = new RegExp(`^${STAMP} \\[(stdout|stderr)\\] worker (\\d+) slot (\\d): (log |piece-|first |second |buffer |error )m${i}$`).exec(line);
        t.ok(x, `stamped: ${line}`);
        if (!x) continue;
        t.equal(x[1], x[4] === 'error ' ? 'stderr' : 'stdout', 'the stream it was written to');
        t.equal(slots.get(Number(x[2])), Number(x[3]), "the worker's own pid and slot");
      }
    }
    // The master's own lines and the worker's are nginx lines as before.
    t.match(text, new RegExp(`^${STAMP} \\[notice\\] ${m.masterPid}#0: generation 1: all 2 worker\\(s\\) ready$`, 'm'));
  });
}
