// Debugging a worker: worker_inspect opens each Node worker's inspector on its own port,
// worker_source_maps makes stack traces name the app's TypeScript source.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import WebSocket from 'ws';
import { childrenOf } from '../src/proc.js';
import { cli, freePort, get, killAll, startMaster, tempDir, waitForAnswer } from './helpers/master.js';

/** Two consecutive free ports, for slots 0 and 1. */
async function twoPorts(): Promise<number> {
  for (;;) {
    const p = await freePort();
    const free = await new Promise<boolean>((resolve) => {
      const s = net.createServer().once('error', () => resolve(false));
      s.listen(p + 1, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free && p < 65535) return p;
  }
}

/** Evaluates `expression` in the worker behind an inspector port, over the DevTools protocol. */
async function evaluate(port: number, expression: string): Promise<unknown> {
  const targets = JSON.parse((await get({ port, path: '/json/list' })).body) as Array<{ webSocketDebuggerUrl: string }>;
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  try {
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(JSON.stringify({ id: 1, method: 'Runtime.evaluate', params: { expression, returnByValue: true } }));
    const answer = await new Promise<{ result: { result: { value: unknown } } }>((resolve) => ws.once('message', (d) => resolve(JSON.parse(String(d)))));
    return answer.result.result.value;
  } finally {
    ws.terminate();
  }
}

t.test('worker_inspect: slot N has its inspector on 127.0.0.1, port + N', async (t) => {
  const port = await freePort();
  const inspect = await twoPorts();
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'app.mjs'), 'export default (req, res) => res.end("ok");\n');
  await startMaster(t, { dir, conf: `worker_processes 2;\nworker_inspect ${inspect};\nlisten 127.0.0.1:${port};\napp app.mjs;\n` });
  for (const slot of [0, 1]) {
    await waitForAnswer(inspect + slot);
    t.equal(await evaluate(inspect + slot, 'process.env.TSMASTER_WORKER_ID'), String(slot), `port ${inspect + slot} is slot ${slot}'s inspector`);
  }
});

t.test('worker_source_maps: stack traces name the TypeScript source', async (t) => {
  const dir = tempDir(t);
  // A TypeScript app compiled as tsc would, with its source map inline.
  const source = 'import type { IncomingMessage, ServerResponse } from "node:http";\n\nexport default function app(_req: IncomingMessage, res: ServerResponse): void {\n  res.end(new Error("where").stack);\n}\n';
  fs.writeFileSync(path.join(dir, 'app.ts'), source);
  const out = ts.transpileModule(source, { fileName: 'app.ts', compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true, inlineSources: true } });
  fs.writeFileSync(path.join(dir, 'app.mjs'), out.outputText.replace('app.js.map', 'app.mjs.map'));
  for (const on of [true, false]) {
    const port = await freePort();
    const sub = tempDir(t);
    fs.copyFileSync(path.join(dir, 'app.mjs'), path.join(sub, 'app.mjs'));
    fs.copyFileSync(path.join(dir, 'app.ts'), path.join(sub, 'app.ts'));
    fs.writeFileSync(path.join(sub, 'tsmaster.conf'), `daemon off;\npid m.pid;\nerror_log m.log;\nworker_source_maps ${on ? 'on' : 'off'};\nlisten 127.0.0.1:${port};\napp app.mjs;\n`);
    // tap's loader, which it adds to every spawn's NODE_OPTIONS, turns source maps on: not here.
    const master = spawn('/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, cli, '-p', sub], { stdio: 'ignore' });
    t.teardown(() => killAll([master.pid!, ...childrenOf(master.pid!)]));
    const stack = await waitForAnswer(port);
    if (on) t.match(stack, /app\.ts:4:\d+/, 'on: the .ts file and its line');
    else t.match(stack, /app\.mjs:\d+:\d+/, 'off: the compiled file');
  }
});
