// Run by `tsmaster -t` in a worker's place (its Node and options, its user, environment and
// directory): opens the app and has the module loader load it as a worker's import() would,
// with a hook (app-probe-hook.ts) that answers in the app's place, so none of the app runs.
// Prints one JSON line: {"format": ...} or {"code": ..., "message": ...}.
import fs from 'node:fs';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

export type ProbeResult = { format: string } | { code: string; message: string };

const app = process.argv[2] ?? '';
const url = pathToFileURL(app).href;
let result: ProbeResult;
try {
  // The loader says "cannot find module" for a file it may not read; open says why. Never
  // blocks on a FIFO.
  const fd = fs.openSync(app, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const regular = fs.fstatSync(fd).isFile();
  fs.closeSync(fd);
  if (!regular) throw Object.assign(new Error(`"${app}" is not a regular file`), { code: 'EINVAL' });
  register(new URL('./app-probe-hook.js', import.meta.url), { data: { url } });
  const mod = (await import(url)) as { default: string };
  result = { format: mod.default };
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  result = { code: typeof e.code === 'string' ? e.code : 'ERR_UNKNOWN', message: e instanceof Error ? e.message : String(err) };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
