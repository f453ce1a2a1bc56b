// The shipped scripts/docker/Dockerfile under a real Docker daemon: built from this tree on a
// local stand-in for node:24-bookworm (scripts/docker/local-base.sh, kept between runs), run
// with --network host on loopback ports. The master is PID 1, reaps orphans, reloads on
// `docker kill -s HUP`, is healthy by the image's HEALTHCHECK, answers a request in flight
// through `docker stop` and exits 0, and `docker logs` has its lines and the app's.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { eventsOf, parseLog } from './helpers/log.js';
import { freePort, get, root, sleep, tempDir, waitFor } from './helpers/master.js';
import { nodeBinary } from './helpers/node-bin.js';
import { cmdline, nsPid } from './helpers/proc.js';
import { procStat, processes } from '../src/proc.js';

/** Debian's docker.io client (what .ci/run installs), matched to its daemon; else PATH's. */
const DOCKER = fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
const BASE = 'tsmaster-base:node24-bookworm';
const name = `tsmaster-test-${process.pid}`;

function docker(args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(DOCKER, args, { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: unknown }).code as number) ?? null : 0, stdout, stderr }),
    );
  });
}

function hasImage(tag: string): boolean {
  return spawnSync(DOCKER, ['image', 'inspect', tag], { stdio: 'ignore' }).status === 0;
}

function cannotRun(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (the Docker daemon)';
  const info = spawnSync(DOCKER, ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 20_000 });
  if (info.status !== 0) return `no Docker daemon answers (${DOCKER} info: ${(info.stderr || info.error?.message || '').trim().split('\n')[0]})`;
  if (!hasImage(BASE) && spawnSync('debootstrap', ['--version'], { stdio: 'ignore' }).status !== 0) return `no ${BASE} image and no debootstrap to build it`;
  return false;
}

const skip = cannotRun();
const node24 = skip ? null : nodeBinary(24);
const why: string | false = skip || (node24 ? node24.skip : false);

/** The build context the Dockerfile expects: this tree's sources, and the app in app/. */
function context(dir: string): string {
  const ctx = path.join(dir, 'context');
  for (const p of ['package.json', 'package-lock.json', 'tsconfig.json', 'src', 'man', 'scripts']) {
    fs.cpSync(path.join(root, p), path.join(ctx, p), { recursive: true });
  }
  // The native sources only: a native/build of this machine would be a stale build there.
  fs.cpSync(path.join(root, 'native'), path.join(ctx, 'native'), { recursive: true, filter: (src) => !src.startsWith(path.join(root, 'native', 'build')) });
  fs.mkdirSync(path.join(ctx, 'app'));
  fs.copyFileSync(path.join(root, 'test', 'fixtures', 'docker', 'server.js'), path.join(ctx, 'app', 'server.js'));
  return ctx;
}

/** The shipped tsmaster.conf on loopback ports (--network host shares this machine's). */
function loopbackConf(dir: string, port: number, metricsPort: number): string {
  const text = fs.readFileSync(path.join(root, 'scripts', 'docker', 'tsmaster.conf'), 'utf8');
  const conf = text.replace(/^listen(\s+)\S+;$/m, `listen$1127.0.0.1:${port};`).replace(/^metrics_listen(\s+)\S+;$/m, `metrics_listen$1127.0.0.1:${metricsPort};`).replace(/^worker_processes(\s+)\S+;$/m, 'worker_processes$12;');
  if (!conf.includes(`127.0.0.1:${port};`) || !conf.includes(`127.0.0.1:${metricsPort};`)) throw new Error('the shipped tsmaster.conf has no listen and metrics_listen to move to loopback');
  const file = path.join(dir, 'tsmaster.conf');
  fs.writeFileSync(file, conf);
  return file;
}

function zombiesOf(pid: number): number[] {
  return processes().filter((p) => {
    const st = procStat(p);
    return st?.ppid === pid && st.state === 'Z';
  });
}

function childrenOf(pid: number): number[] {
  return processes().filter((p) => procStat(p)?.ppid === pid);
}

async function inspect(format: string): Promise<string> {
  return (await docker(['inspect', '--format', format, name])).stdout.trim();
}

t.test('the shipped Dockerfile, on Node 24, under a real Docker daemon', { skip: why }, async (t) => {
  if (!node24 || node24.skip !== false) return;
  // A first run builds the image's dependency layer (npm ci, 1 to 3 minutes), and on a new
  // machine the base (debootstrap, minutes); both are kept for the next runs.
  t.setTimeout(15 * 60_000);
  if (!hasImage(BASE)) {
    const [env, ...args] = ['/usr/bin/env', `DOCKER=${DOCKER}`, 'sh', path.join(root, 'scripts', 'docker', 'local-base.sh'), BASE, path.dirname(path.dirname(node24.node))];
    const base = spawnSync(env!, args, { encoding: 'utf8', timeout: 14 * 60_000 });
    t.equal(base.status, 0, `local-base.sh: ${base.stderr.slice(-2000)}`);
  }
  const dir = tempDir(t, 'tsm-docker-');
  const image = `${name}:latest`;
  t.teardown(async () => {
    await docker(['rm', '--force', '--volumes', name]);
    await docker(['rmi', '--force', image]);
  });
  // The build stages' layers stay as the build cache of the next run (npm ci only when the lockfile changes).
  const build = await docker(['build', '--network', 'host', '--file', path.join(root, 'scripts', 'docker', 'Dockerfile'), '--build-arg', `BUILD_BASE=${BASE}`, '--build-arg', `BASE=${BASE}`, '--tag', image, context(dir)], 10 * 60_000);
  t.equal(build.code, 0, `docker build: ${build.stderr.slice(-3000)}`);
  if (build.code !== 0) return;

  const port = await freePort();
  const metricsPort = await freePort();
  const conf = loopbackConf(dir, port, metricsPort);
  // The image's own HEALTHCHECK command, checked every second instead of every 30.
  const run = await docker(['run', '--detach', '--name', name, '--network', 'host', '--health-interval', '1s', '--health-start-period', '0s', '--volume', `${conf}:/srv/app/tsmaster.conf:ro`, image]);
  t.equal(run.code, 0, `docker run: ${run.stderr}`);
  const logs = async () => {
    const r = await docker(['logs', name]);
    return `${r.stdout}${r.stderr}`;
  };
  await waitFor('every worker ready', async () => eventsOf(parseLog(await logs())).some((e) => e.event === 'generation-ready' && e.generation === 1) || undefined, 60_000);
  t.equal((await get({ port })).status, 200, 'served');

  const pid1 = Number(await inspect('{{.State.Pid}}'));
  t.equal(nsPid(pid1), 1, 'the container\'s PID 1 ...');
  t.match(cmdline(pid1), /^tsmaster: master process /, '... is the master');
  const workers = childrenOf(pid1).filter((p) => cmdline(p).startsWith('tsmaster: worker process'));
  t.equal(workers.length, 2, 'two workers, its children');

  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await get({ port, path: '/orphan' })).status);
  t.same(statuses, Array(20).fill(200), '20 requests, each leaving an orphan');
  await waitFor('every orphan collected', () => childrenOf(pid1).every((p) => !cmdline(p).startsWith('sleep')) && zombiesOf(pid1).length === 0 || undefined, 15_000);
  t.same(zombiesOf(pid1), [], 'no zombie left');

  t.equal(await waitFor('healthy', async () => ((await inspect('{{.State.Health.Status}}')) === 'healthy' ? 'healthy' : undefined), 60_000), 'healthy', 'the HEALTHCHECK (tsmaster -s status) passes');

  const hup = await docker(['kill', '--signal', 'HUP', name]);
  t.equal(hup.code, 0, hup.stderr);
  const reloaded = await waitFor('reload finished', async () => eventsOf(parseLog(await logs())).find((e) => e.event === 'reload-finished'), 30_000);
  t.equal(reloaded.event, 'reload-finished');
  await waitFor('the old workers gone', () => workers.every((p) => !childrenOf(pid1).includes(p)) || undefined, 30_000);
  const after = childrenOf(pid1).filter((p) => cmdline(p).startsWith('tsmaster: worker process'));
  t.equal(after.length, 2, 'two new workers');
  t.notOk(after.some((p) => workers.includes(p)), 'none of them an old one');

  const text = await logs();
  t.ok(eventsOf(parseLog(text)).some((e) => e.event === 'generation-ready' && e.generation === 1 && e.line.pid === 1), 'docker logs has the master\'s lines (pid 1)');
  t.match(text, /^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d \[stdout\] worker \d+ slot (\d): app: loaded by worker \1 as uid 1000$/m, "and the app's, as the image's user node, each line stamped with its worker and slot");

  // `docker stop` (STOPSIGNAL SIGQUIT) with a 2 s request in flight.
  const inFlight = get({ port, path: '/?ms=2000' }).then(
    (r) => ({ ok: r.status === 200, text: r.body }),
    (e: Error) => ({ ok: false, text: e.message }),
  );
  await sleep(300);
  const stop = await docker(['stop', '--time', '30', name]);
  t.equal(stop.code, 0, stop.stderr);
  const result = await inFlight;
  t.ok(result.ok, `the request in flight was answered: ${result.text}`);
  t.equal(await inspect('{{.State.ExitCode}}'), '0', 'the container exited 0');
  t.match(await logs(), /signal 3 \(SIGQUIT\) received/, 'on the image\'s stop signal');
});
