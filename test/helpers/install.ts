// Installing tsmaster as users do: the tarball `npm pack` makes, into a fresh project, with
// npm, pnpm or yarn, on a PATH that has no compiler. Used by test/install.test.ts and by the
// bench's install stage.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { root } from './paths.js';
import { run, type RunResult } from './run.js';
import { tempDir, type Teardown } from './tmp.js';

export type Installer = 'npm' | 'npm --ignore-scripts' | 'pnpm' | 'yarn';
export const INSTALLERS: readonly Installer[] = ['npm', 'npm --ignore-scripts', 'pnpm', 'yarn'];

/** The first `name` on this process's PATH, symlinks resolved. */
function which(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const p = path.join(dir || '.', name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.realpathSync(p);
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not on the PATH`);
}

/**
 * `npm pack` of this checkout, run in a copy of it (its files as git sees them, the dev addon
 * and the prebuilds, node_modules linked) so that its prepack and prepare, which rebuild
 * dist/, never rewrite the files that other tests are running meanwhile. Returns the .tgz.
 */
export async function packTarball(t: Teardown): Promise<string> {
  const dir = tempDir(t, 'tsm-pack-');
  const copy = path.join(dir, 'tsmaster');
  const files = execFileSync('git', ['-C', root, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { encoding: 'utf8' })
    .split('\0')
    .filter((f) => f !== '' && fs.existsSync(path.join(root, f)));
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(copy, f)), { recursive: true });
    fs.copyFileSync(path.join(root, f), path.join(copy, f));
    fs.chmodSync(path.join(copy, f), fs.statSync(path.join(root, f)).mode & 0o7777);
  }
  // The dev build linked, not copied: its Makefile names the Node headers and the sources by
  // paths relative to where it was made, which a copy at another depth would get wrong.
  if (fs.existsSync(path.join(root, 'native/build'))) fs.symlinkSync(path.join(root, 'native/build'), path.join(copy, 'native/build'));
  // With their times, so scripts/prebuild.sh rebuilds only what changed.
  if (fs.existsSync(path.join(root, 'native/prebuilds'))) {
    fs.cpSync(path.join(root, 'native/prebuilds'), path.join(copy, 'native/prebuilds'), { recursive: true, preserveTimestamps: true });
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'));
  const r = await run('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: copy, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`npm pack failed (${r.code ?? r.error}):\n${r.stdout}\n${r.stderr}`);
  const tgz = r.stdout.trim().split('\n').pop()!;
  return path.join(dir, tgz);
}

/**
 * A bin dir with node (this process's unless given), npm, pnpm and yarn, and the few shell tools pnpm's bin shims use
 * (sh, dirname, sed, uname): no g++, cc, make or python3.
 */
export function bareBin(t: Teardown, node = process.execPath): string {
  const bin = tempDir(t, 'tsm-bin-');
  const links: Record<string, string> = {
    node,
    npm: which('npm'),
    pnpm: path.join(root, 'node_modules/pnpm/bin/pnpm.cjs'),
    yarn: path.join(root, 'node_modules/yarn/bin/yarn.js'),
  };
  for (const tool of ['sh', 'dirname', 'sed', 'uname']) links[tool] = which(tool);
  for (const [name, target] of Object.entries(links)) fs.symlinkSync(target, path.join(bin, name));
  fs.chmodSync(bin, 0o755);
  return bin;
}

/** How this machine reaches the registry, kept as a user's shell would: its CA bundle (a TLS-inspecting proxy's) and proxies. */
const NETWORK_ENV = ['NODE_EXTRA_CA_CERTS', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy'];

/** The environment of an install and of the installed command: HOME (the caches), the bare PATH, the network settings. */
export function bareEnv(bin: string): NodeJS.ProcessEnv {
  const network = Object.fromEntries(NETWORK_ENV.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]]])));
  return { HOME: process.env.HOME ?? '/root', PATH: bin, LANG: 'C.UTF-8', ...network };
}

/** A fresh project with tsmaster installed from `tgz` by `installer`. */
export async function installInto(project: string, installer: Installer, tgz: string, bin: string): Promise<RunResult> {
  fs.mkdirSync(project, { recursive: true });
  fs.writeFileSync(path.join(project, 'package.json'), `${JSON.stringify({ name: 'shop', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  const args: Record<Installer, string[]> = {
    npm: ['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', tgz],
    'npm --ignore-scripts': ['npm', 'install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tgz],
    pnpm: ['pnpm', 'add', '--prefer-offline', tgz],
    yarn: ['yarn', 'add', '--prefer-offline', '--non-interactive', '--no-progress', `file:${tgz}`],
  };
  const [cmd, ...rest] = args[installer];
  return run(path.join(bin, cmd!), rest, { cwd: project, env: bareEnv(bin), timeoutMs: 180_000 });
}
