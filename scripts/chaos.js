// `npm run chaos [-- --seconds S --seed N]`: the chaos test of test/chaos.test.ts for as long
// as asked (default 300 s), from a seed (default: random, printed), through tap.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`chaos: --${name} wants a whole number, not "${args[i + 1] ?? ''}"\n`);
    process.exit(2);
  }
  return v;
};
const seconds = opt('seconds', 300);
const seed = opt('seed', Math.floor(Math.random() * 2 ** 31));
process.stderr.write(`chaos: seed ${seed}, ${seconds} s\n`);
const r = spawnSync(path.join(root, 'node_modules', '.bin', 'tap'), ['--timeout', String(seconds + 300), '--disable-coverage', 'test/chaos.test.ts'], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, CHAOS_SECONDS: String(seconds), CHAOS_SEED: String(seed) },
});
process.exit(r.status ?? 1);
