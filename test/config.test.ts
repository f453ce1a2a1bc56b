import t, { type Test } from 'tap';
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsmError } from '../src/errors.js';
import { ConfigError, directives, loadConfig, parseConfigText, parseDuration, parseSize, type Config } from '../src/config/index.js';
import { tokenize } from '../src/config/lexer.js';
import { parseText } from '../src/config/parser.js';
import { usableCpus } from '../src/config/cpus.js';
import { occurrence } from '../src/config/definition.js';
import { definitions } from '../src/config/directives.js';

const FIX = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures/conf');
const SRC = '/etc/x.conf';
const APP = join(FIX, 'app.js');

/** Parses `text` as /etc/x.conf with the fixtures as prefix; adds `app` and `listen` at the end when missing. */
function conf(text: string): Config {
  let full = text;
  if (!/(^|[\s;])(app|exec)\s/.test(text)) full += '\napp app.js;';
  if (!/(^|[\s;])listen\s/.test(text)) full += '\nlisten 8080;';
  return parseConfigText(full, SRC, FIX);
}

function confError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

/** Asserts that `text` fails with exactly `message` (and the file and line when given). */
function rejects(tt: Test, text: string, message: string, where?: { file: string; line: number }) {
  const err = confError(() => conf(text));
  tt.equal(err.message, message, JSON.stringify(text));
  if (where) tt.match({ file: err.file, line: err.line }, where, 'file and line');
}

t.test('ConfigError', async (t) => {
  const err = confError(() => conf('listn 8080;'));
  t.ok(err instanceof TsmError);
  t.ok(err instanceof Error);
  t.equal(err.code, 'TSM_ERR_CONFIG');
  t.equal(err.name, 'ConfigError');
  t.equal(err.message, 'unknown directive "listn" in /etc/x.conf:1');
  t.equal(err.file, SRC);
  t.equal(err.line, 1);
});

t.test('defaults', async (t) => {
  const c = parseConfigText('listen 8080;\napp app.js;\n', SRC, FIX);
  const env: Record<string, string> = {};
  for (const k of ['PATH', 'HOME', 'TZ', 'NODE_ENV', 'LANG']) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  t.same(c, {
    file: SRC,
    prefix: FIX,
    pid: join(FIX, 'logs/tsmaster.pid'),
    errorLog: { path: join(FIX, 'logs/error.log'), level: 'notice' },
    daemon: true,
    user: null,
    workerProcesses: 1,
    workerShutdownTimeoutMs: 10_000,
    workerReloadBatch: null,
    termShutdown: 'fast',
    metricsListen: null,
    workerHeartbeatTimeoutMs: 60_000,
    workerRlimitNofile: null,
    workerCpuAffinity: null,
    workerPriority: null,
    workerMaxMemory: null,
    workerLog: join(FIX, 'logs/error.log'),
    workerStopSignal: 'SIGQUIT',
    workerInspect: null,
    workerSourceMaps: false,
    workerLogPrefix: true,
    readyTimeoutMs: 30_000,
    env,
    listens: [
      {
        kind: 'tcp', host: '0.0.0.0', port: 8080, ipv6Only: false, backlog: 511, reuseport: false,
        name: '0.0.0.0:8080', key: 'tcp:0.0.0.0:8080', source: { file: SRC, line: 1 },
      },
    ],
    worker: { kind: 'app', path: APP },
    controlSocket: join(FIX, 'logs/tsmaster.pid.sock'),
  });
  t.strictSame(Object.keys(c).sort(), [
    'controlSocket', 'daemon', 'env', 'errorLog', 'file', 'listens', 'metricsListen', 'pid', 'prefix', 'readyTimeoutMs', 'termShutdown', 'user', 'worker',
    'workerCpuAffinity', 'workerHeartbeatTimeoutMs', 'workerInspect', 'workerLog', 'workerLogPrefix', 'workerMaxMemory', 'workerPriority', 'workerProcesses', 'workerReloadBatch',
    'workerRlimitNofile', 'workerShutdownTimeoutMs', 'workerSourceMaps', 'workerStopSignal',
  ]);
});

t.test('a relative prefix is made absolute', async (t) => {
  const rel = relative(process.cwd(), FIX);
  t.notOk(rel.startsWith('/'));
  const c = parseConfigText('listen 1; app app.js;', 'inline', rel);
  t.equal(c.prefix, FIX);
  t.equal(c.pid, join(FIX, 'logs/tsmaster.pid'));
});

t.test('lexer', async (t) => {
  t.test('tokens carry file and line', async (t) => {
    const toks = tokenize('a "b c";\n# comment ; {\n\n  d\n  e; { }', 'f.conf');
    t.same(toks, [
      { type: 'word', value: 'a', quoted: false, file: 'f.conf', line: 1 },
      { type: 'word', value: 'b c', quoted: true, file: 'f.conf', line: 1 },
      { type: ';', file: 'f.conf', line: 1 },
      { type: 'word', value: 'd', quoted: false, file: 'f.conf', line: 4 },
      { type: 'word', value: 'e', quoted: false, file: 'f.conf', line: 5 },
      { type: ';', file: 'f.conf', line: 5 },
      { type: '{', file: 'f.conf', line: 5 },
      { type: '}', file: 'f.conf', line: 5 },
    ]);
  });
  t.test('words end at ; { } and blanks', async (t) => {
    t.same(tokenize('a;b{c}d\te\r\nf', 'x').map((x) => (x.type === 'word' ? x.value : x.type)), ['a', ';', 'b', '{', 'c', '}', 'd', 'e', 'f']);
  });
  t.test('# inside a word is not a comment; $ is not special', async (t) => {
    t.same(tokenize('a#b $HOME $x$ # c d', 'x').map((x) => (x.type === 'word' ? x.value : x.type)), ['a#b', '$HOME', '$x$']);
  });
  t.test('quotes and escapes', async (t) => {
    const words = (s: string) => tokenize(s, 'x').map((x) => (x.type === 'word' ? x.value : x.type));
    t.same(words(`"a b" 'c;d' "e#f" '{}'`), ['a b', 'c;d', 'e#f', '{}']);
    t.same(words(`"it's" 'say "hi"'`), [`it's`, 'say "hi"']);
    t.same(words(String.raw`"a\"b" 'a\'b' "a\\b" "\n\t\r" "\d" a\"b c\ d \#e`), ['a"b', "a'b", 'a\\b', '\n\t\r', '\\d', 'a"b', 'c\\ d', '\\#e']);
    t.same(words(`"" ''`), ['', '']);
    t.same(words(`"line\none" x`), ['line\none', 'x']);
    t.same(words(`a"b`), ['a"b'], 'a quote inside a word is an ordinary character');
    t.same(words('\ufeffpid'), ['pid'], 'byte order mark skipped');
  });
  t.test('line numbers after a multi-line string', async (t) => {
    const toks = tokenize('"a\nb\nc" d', 'x');
    t.equal(toks[0]!.line, 1);
    t.equal(toks[1]!.line, 3);
    const esc = tokenize('"a\\\nb" c\\\nd e', 'x');
    t.same(esc.map((x) => [x.type === 'word' && x.value, x.line]), [['a\\\nb', 1], ['c\\\nd', 2], ['e', 3]], 'escaped newlines');
  });
  t.test('errors', async (t) => {
    t.throws(() => tokenize('a "b\n\n', '/f'), { message: 'unexpected end of file, unterminated quoted string in /f:1' });
    t.throws(() => tokenize('\n"ab"c;', '/f'), { message: 'unexpected "c" in /f:2' });
    t.throws(() => tokenize("'ab'\"c\";", '/f'), { message: 'unexpected """ in /f:1' });
    t.throws(() => tokenize('a\\', '/f'), { message: 'unexpected end of file after "\\" in /f:1' });
    t.throws(() => tokenize('a\0b;', '/f'), { message: 'unexpected NUL character in /f:1' });
    t.throws(() => tokenize('a\\\0b;', '/f'), { message: 'unexpected NUL character in /f:1' });
    t.throws(() => tokenize('\n"a\0b";', '/f'), { message: 'unexpected NUL character in /f:2' });
    t.throws(() => tokenize('"a\\\0b";', '/f'), { message: 'unexpected NUL character in /f:1' });
    t.throws(() => tokenize('"a\\', '/f'), { message: 'unexpected end of file, unterminated quoted string in /f:1' });
    t.throws(() => tokenize('a\\', 'command line'), { message: 'unexpected end of parameter after "\\" in command line' });
    t.throws(() => tokenize('"a', 'command line'), { message: 'unexpected end of parameter, unterminated quoted string in command line' });
  });
});

t.test('parser', async (t) => {
  t.same(parseText('pid a;\n\nlisten  8080\n  reuseport ;', '/f', { includeBase: '/' }), [
    { name: 'pid', args: ['a'], file: '/f', line: 1 },
    { name: 'listen', args: ['8080', 'reuseport'], file: '/f', line: 3 },
  ]);
  t.throws(() => parseText('events {\n}', '/f', { includeBase: '/' }), { message: 'unexpected "{" in /f:1' });
  t.throws(() => parseText('a;\n}', '/f', { includeBase: '/' }), { message: 'unexpected "}" in /f:2' });
  t.throws(() => parseText('a;\n  ;', '/f', { includeBase: '/' }), { message: 'unexpected ";" in /f:2' });
  t.throws(() => parseText('a b;\nc d\n\n', '/f', { includeBase: '/' }), { message: 'unexpected end of file, expecting ";" in /f:2' });
  t.throws(() => parseText('a b', 'command line', { includeBase: '/' }), { message: 'unexpected end of parameter, expecting ";" in command line' });
});

t.test('syntax through parseConfigText', async (t) => {
  t.test('comments', async (t) => {
    const c = conf('# a comment; pid x;\npid a#b; # trailing comment\n#last');
    t.equal(c.pid, join(FIX, 'a#b'));
  });
  t.test('quoted directive names and arguments', async (t) => {
    const c = conf(`"daemon" 'off';\nenv "GREETING=hello world";\nenv 'Q=say "hi"';\nenv X=\\d;\nenv "T=a\\tb";`);
    t.equal(c.daemon, false);
    t.equal(c.env.GREETING, 'hello world');
    t.equal(c.env.Q, 'say "hi"');
    t.equal(c.env.X, '\\d');
    t.equal(c.env.T, 'a\tb');
  });
  t.test('directives may span lines', async (t) => {
    const c = conf('listen\n  127.0.0.1:8080\n  backlog=7\n;\nworker_processes\n3;');
    t.equal(c.listens[0]!.backlog, 7);
    t.same(c.listens[0]!.source, { file: SRC, line: 1 });
    t.equal(c.workerProcesses, 3);
  });
  t.test('CRLF line endings', async (t) => {
    rejects(t, 'daemon off;\r\nworker_processes x;\r\n', 'invalid value "x" in "worker_processes" directive in /etc/x.conf:2');
  });
  t.test('line numbers count lines inside strings', async (t) => {
    rejects(t, 'env "A=1\n2\n3";\nworker_processes x;', 'invalid value "x" in "worker_processes" directive in /etc/x.conf:4');
  });
  t.test('syntax errors', async (t) => {
    rejects(t, 'daemon off;\nevents {\n}', 'unexpected "{" in /etc/x.conf:2', { file: SRC, line: 2 });
    rejects(t, '}', 'unexpected "}" in /etc/x.conf:1');
    rejects(t, 'daemon off;;', 'unexpected ";" in /etc/x.conf:1');
    rejects(t, 'pid "a"b;', 'unexpected "b" in /etc/x.conf:1');
    rejects(t, 'daemon off;\npid "abc;\n', 'unexpected end of file, unterminated quoted string in /etc/x.conf:2');
    const err = confError(() => parseConfigText('app app.js;\nlisten 8080;\n\n\n\n\n\n\npid x\n', SRC, FIX));
    t.equal(err.message, 'unexpected end of file, expecting ";" in /etc/x.conf:9');
    t.equal(err.line, 9);
  });
  t.test('unknown directive', async (t) => {
    rejects(t, 'daemon off;\n\nlistn 8080;', 'unknown directive "listn" in /etc/x.conf:3', { file: SRC, line: 3 });
    rejects(t, 'http;', 'unknown directive "http" in /etc/x.conf:1');
    rejects(t, 'Daemon off;', 'unknown directive "Daemon" in /etc/x.conf:1');
  });
});

t.test('number of arguments, for every directive', async (t) => {
  for (const d of directives) {
    rejects(t, `daemon off;\n${d.name};`, `invalid number of arguments in "${d.name}" directive in /etc/x.conf:2`, { file: SRC, line: 2 });
    if (Number.isFinite(d.maxArgs)) {
      const args = Array.from({ length: d.maxArgs + 1 }, () => 'x').join(' ');
      rejects(t, `${d.name} ${args};`, `invalid number of arguments in "${d.name}" directive in /etc/x.conf:1`);
    }
  }
});

t.test('directives that may appear once', async (t) => {
  rejects(t, 'pid a;\npid b;', '"pid" directive is duplicate in /etc/x.conf:2', { file: SRC, line: 2 });
  rejects(t, 'daemon on;\n\ndaemon on;', '"daemon" directive is duplicate in /etc/x.conf:3');
  rejects(t, 'worker_processes 1;\nworker_processes 2;', '"worker_processes" directive is duplicate in /etc/x.conf:2');
  rejects(t, 'app app.js;\napp app.js;\nlisten 1;', '"app" directive is duplicate in /etc/x.conf:2');
  rejects(t, 'control_socket off;\ncontrol_socket off;', '"control_socket" directive is duplicate in /etc/x.conf:2');
});

t.test('pid', async (t) => {
  t.equal(conf('pid run/t.pid;').pid, join(FIX, 'run/t.pid'));
  t.equal(conf('pid /var/run/t.pid;').pid, '/var/run/t.pid');
  t.equal(conf('pid ../t.pid;').pid, resolve(FIX, '../t.pid'));
  rejects(t, 'pid "";', 'invalid value "" in "pid" directive in /etc/x.conf:1');
  rejects(t, 'pid a b;', 'invalid number of arguments in "pid" directive in /etc/x.conf:1');
});

t.test('error_log', async (t) => {
  t.same(conf('error_log logs/e.log;').errorLog, { path: join(FIX, 'logs/e.log'), level: 'notice' });
  t.same(conf('error_log /var/log/t.log debug;').errorLog, { path: '/var/log/t.log', level: 'debug' });
  t.same(conf('error_log stderr;').errorLog, { path: 'stderr', level: 'notice' });
  for (const level of ['debug', 'info', 'notice', 'warn', 'error', 'crit', 'alert', 'emerg']) {
    t.equal(conf(`error_log stderr ${level};`).errorLog.level, level);
  }
  rejects(t, 'error_log stderr warning;', 'invalid log level "warning" in "error_log" directive in /etc/x.conf:1');
  rejects(t, 'error_log stderr INFO;', 'invalid log level "INFO" in "error_log" directive in /etc/x.conf:1');
  rejects(t, 'error_log syslog:server=127.0.0.1;', 'invalid value "syslog:server=127.0.0.1" in "error_log" directive, syslog logging is not supported in /etc/x.conf:1');
  rejects(t, 'error_log "";', 'invalid value "" in "error_log" directive in /etc/x.conf:1');
});

t.test('daemon', async (t) => {
  t.equal(conf('daemon on;').daemon, true);
  t.equal(conf('daemon off;').daemon, false);
  rejects(t, 'daemon yes;', 'invalid value "yes" in "daemon" directive, it must be "on" or "off" in /etc/x.conf:1');
  rejects(t, 'daemon ON;', 'invalid value "ON" in "daemon" directive, it must be "on" or "off" in /etc/x.conf:1');
});

t.test('user', async (t) => {
  // pick accounts from the local files, read independently of the implementation
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n').filter((l) => /^[^#:]+:[^:]*:\d+:\d+:/.test(l)).map((l) => l.split(':'));
  const groups = readFileSync('/etc/group', 'utf8').split('\n').filter((l) => /^[^#:]+:[^:]*:\d+:/.test(l)).map((l) => l.split(':'));
  const root = passwd.find((f) => f[0] === 'root')!;
  t.same(conf('user root;').user, { name: 'root', uid: 0, gid: Number(root[3]), home: root[5] });
  const other = passwd.find((f) => f[2] !== '0') ?? root;
  t.same(conf(`user ${other[0]};`).user, { name: other[0], uid: Number(other[2]), gid: Number(other[3]), home: other[5] }, 'primary group by default');
  const grp = groups.find((g) => g[2] !== other[3]) ?? groups[0]!;
  t.same(conf(`user ${other[0]} ${grp[0]};`).user, { name: other[0], uid: Number(other[2]), gid: Number(grp[2]), home: other[5] }, 'explicit group');
  rejects(t, 'user tsm_no_such_user;', 'getpwnam("tsm_no_such_user") failed in /etc/x.conf:1');
  rejects(t, 'user root tsm_no_such_group;', 'getgrnam("tsm_no_such_group") failed in /etc/x.conf:1');
  rejects(t, 'user "";', 'getpwnam("") failed in /etc/x.conf:1');
  rejects(t, 'user 0;', 'getpwnam("0") failed in /etc/x.conf:1');
});

t.test('worker_processes', async (t) => {
  t.equal(conf('worker_processes 4;').workerProcesses, 4);
  t.equal(conf('worker_processes 1024;').workerProcesses, 1024);
  t.equal(conf('worker_processes auto;').workerProcesses, Math.min(1024, availableParallelism()));
  rejects(t, '\n\n\nworker_processes abc;', 'invalid value "abc" in "worker_processes" directive in /etc/x.conf:4', { file: SRC, line: 4 });
  rejects(t, 'worker_processes 0;', 'invalid value "0" in "worker_processes" directive, it must be between 1 and 1024 in /etc/x.conf:1');
  rejects(t, 'worker_processes 1025;', 'invalid value "1025" in "worker_processes" directive, it must be between 1 and 1024 in /etc/x.conf:1');
  rejects(t, 'worker_processes -1;', 'invalid value "-1" in "worker_processes" directive in /etc/x.conf:1');
  rejects(t, 'worker_processes 2.5;', 'invalid value "2.5" in "worker_processes" directive in /etc/x.conf:1');
  rejects(t, 'worker_processes AUTO;', 'invalid value "AUTO" in "worker_processes" directive in /etc/x.conf:1');
});

t.test('durations', async (t) => {
  const cases: Array<[string, number | null]> = [
    ['0', 0], ['10', 10_000], ['500ms', 500], ['10s', 10_000], ['1m', 60_000], ['1h', 3_600_000], ['1d', 86_400_000],
    ['1m30s', 90_000], ['1h1ms', 3_600_001], ['2d3h4m5s6ms', 2 * 86_400_000 + 3 * 3_600_000 + 4 * 60_000 + 5_000 + 6],
    ['', null], ['s', null], ['10x', null], ['1s1m', null], ['1s1s', null], ['1.5s', null], ['-1s', null], ['1 s', null],
    ['10S', null], ['ms', null], ['1w', null], ['10s5', null],
  ];
  for (const [text, ms] of cases) t.equal(parseDuration(text), ms, JSON.stringify(text));
});

t.test('sizes', async (t) => {
  const cases: Array<[string, number | null]> = [
    ['0', 0], ['100', 100], ['2k', 2048], ['2K', 2048], ['512m', 512 * 1024 ** 2], ['1G', 1024 ** 3], ['3g', 3 * 1024 ** 3],
    ['', null], ['k', null], ['1.5g', null], ['10x', null], ['1kb', null], ['-1', null], ['1 k', null], ['99999999999999999g', null],
  ];
  for (const [text, bytes] of cases) t.equal(parseSize(text), bytes, JSON.stringify(text));
});

t.test('worker_shutdown_timeout', async (t) => {
  t.equal(conf('worker_shutdown_timeout 500ms;').workerShutdownTimeoutMs, 500);
  t.equal(conf('worker_shutdown_timeout 3;').workerShutdownTimeoutMs, 3000);
  t.equal(conf('worker_shutdown_timeout 1m30s;').workerShutdownTimeoutMs, 90_000);
  t.equal(conf('worker_shutdown_timeout 0;').workerShutdownTimeoutMs, 0);
  rejects(t, 'worker_shutdown_timeout 10x;', 'invalid value "10x" in "worker_shutdown_timeout" directive in /etc/x.conf:1');
  rejects(t, 'worker_shutdown_timeout off;', 'invalid value "off" in "worker_shutdown_timeout" directive in /etc/x.conf:1');
  rejects(t, 'worker_shutdown_timeout 30d;', 'invalid value "30d" in "worker_shutdown_timeout" directive, it must be at most 2147483647ms in /etc/x.conf:1');
});

t.test('worker_heartbeat_timeout', async (t) => {
  t.equal(conf('worker_heartbeat_timeout off;').workerHeartbeatTimeoutMs, null);
  t.equal(conf('worker_heartbeat_timeout 5s;').workerHeartbeatTimeoutMs, 5000);
  t.equal(conf('worker_heartbeat_timeout 1h;').workerHeartbeatTimeoutMs, 3_600_000);
  rejects(t, 'worker_heartbeat_timeout 0;', 'invalid value "0" in "worker_heartbeat_timeout" directive, it must be greater than 0 in /etc/x.conf:1');
  rejects(t, 'worker_heartbeat_timeout on;', 'invalid value "on" in "worker_heartbeat_timeout" directive in /etc/x.conf:1');
});

t.test('worker_rlimit_nofile', async (t) => {
  t.equal(conf('worker_rlimit_nofile 65536;').workerRlimitNofile, 65536);
  rejects(t, 'worker_rlimit_nofile 0;', 'invalid value "0" in "worker_rlimit_nofile" directive, it must be between 1 and 2147483647 in /etc/x.conf:1');
  rejects(t, 'worker_rlimit_nofile 64k;', 'invalid value "64k" in "worker_rlimit_nofile" directive in /etc/x.conf:1');
  rejects(t, 'worker_rlimit_nofile unlimited;', 'invalid value "unlimited" in "worker_rlimit_nofile" directive in /etc/x.conf:1');
});

t.test('worker_cpu_affinity', async (t) => {
  t.same(conf('worker_processes 3;\nworker_cpu_affinity 0101 1010;').workerCpuAffinity, [[0, 2], [1, 3], [0, 2], [1, 3]], 'masks cycle');
  t.same(conf('worker_cpu_affinity 1 10 100;\nworker_processes 2;').workerCpuAffinity, [[0], [1], [2]], 'order of directives does not matter');
  t.same(conf('worker_cpu_affinity 10000000000000000000000000000000000000000000000000000000000000000001;').workerCpuAffinity, [[0, 67]]);
  const cpus = usableCpus();
  t.ok(cpus.length >= 1);
  const auto = conf(`worker_processes ${cpus.length + 1};\nworker_cpu_affinity auto;`).workerCpuAffinity!;
  t.equal(auto.length, 2 * cpus.length, 'a whole number of cycles covering every worker');
  for (let i = 0; i < 3 * cpus.length + 2; i++) t.same(auto[i % auto.length], [cpus[i % cpus.length]], `worker ${i}`);
  rejects(t, 'worker_cpu_affinity 0102;', 'invalid value "0102" in "worker_cpu_affinity" directive in /etc/x.conf:1');
  rejects(t, 'worker_cpu_affinity 01 0x3;', 'invalid value "0x3" in "worker_cpu_affinity" directive in /etc/x.conf:1');
  rejects(t, 'worker_cpu_affinity 0000;', 'invalid value "0000" in "worker_cpu_affinity" directive, the mask selects no CPU in /etc/x.conf:1');
  rejects(t, 'worker_cpu_affinity auto 0101;', 'invalid value "0101" in "worker_cpu_affinity" directive, "auto" must be alone in /etc/x.conf:1');
  rejects(t, 'worker_cpu_affinity 01 auto;', 'invalid value "auto" in "worker_cpu_affinity" directive in /etc/x.conf:1');
});

t.test('worker_priority', async (t) => {
  t.equal(conf('worker_priority -5;').workerPriority, -5);
  t.equal(conf('worker_priority +5;').workerPriority, 5);
  t.equal(conf('worker_priority -20;').workerPriority, -20);
  t.equal(conf('worker_priority 19;').workerPriority, 19);
  t.equal(conf('worker_priority 0;').workerPriority, 0);
  rejects(t, 'worker_priority 20;', 'invalid value "20" in "worker_priority" directive, it must be between -20 and 19 in /etc/x.conf:1');
  rejects(t, 'worker_priority -21;', 'invalid value "-21" in "worker_priority" directive, it must be between -20 and 19 in /etc/x.conf:1');
  rejects(t, 'worker_priority high;', 'invalid value "high" in "worker_priority" directive in /etc/x.conf:1');
});

t.test('worker_max_memory', async (t) => {
  t.equal(conf('worker_max_memory off;').workerMaxMemory, null);
  t.equal(conf('worker_max_memory 512m;').workerMaxMemory, 512 * 1024 * 1024);
  t.equal(conf('worker_max_memory 1G;').workerMaxMemory, 1024 ** 3);
  t.equal(conf('worker_max_memory 300000;').workerMaxMemory, 300_000);
  t.equal(conf('worker_max_memory 64k;').workerMaxMemory, 65536);
  rejects(t, 'worker_max_memory 0;', 'invalid value "0" in "worker_max_memory" directive, it must be greater than 0 in /etc/x.conf:1');
  rejects(t, 'worker_max_memory 1.5g;', 'invalid value "1.5g" in "worker_max_memory" directive in /etc/x.conf:1');
  rejects(t, 'worker_max_memory 512MB;', 'invalid value "512MB" in "worker_max_memory" directive in /etc/x.conf:1');
});

t.test('worker_log', async (t) => {
  t.equal(conf('worker_log logs/app.log;').workerLog, join(FIX, 'logs/app.log'));
  t.equal(conf('worker_log /var/log/app.log;').workerLog, '/var/log/app.log');
  t.equal(conf('worker_log stderr;').workerLog, 'stderr');
  t.equal(conf('worker_log off;').workerLog, null);
  t.equal(conf('error_log logs/master.log;').workerLog, join(FIX, 'logs/master.log'), 'defaults to the error_log file');
  t.equal(conf('error_log stderr;').workerLog, 'stderr', 'defaults to stderr with error_log stderr');
  t.equal(conf('user nobody;\nerror_log logs/master.log;').workerLog, join(FIX, 'logs/master.worker.log'), "with user, a file of the workers' own beside it");
  rejects(t, 'user nobody;\nerror_log /var/log/t.log;\nworker_log /var/log/t.log;', 'worker_log "/var/log/t.log" is the error_log: with "user", workers write a file of their own in /etc/x.conf:3');
  rejects(t, 'worker_log "";', 'invalid value "" in "worker_log" directive in /etc/x.conf:1');
});

t.test('term_shutdown', async (t) => {
  t.equal(conf('term_shutdown fast;').termShutdown, 'fast');
  t.equal(conf('term_shutdown graceful;').termShutdown, 'graceful');
  rejects(t, 'term_shutdown quit;', 'invalid value "quit" in "term_shutdown" directive, it must be "fast" or "graceful" in /etc/x.conf:1');
  rejects(t, 'term_shutdown;', 'invalid number of arguments in "term_shutdown" directive in /etc/x.conf:1');
});

t.test('worker_stop_signal', async (t) => {
  t.equal(conf('worker_stop_signal QUIT;').workerStopSignal, 'SIGQUIT');
  t.equal(conf('worker_stop_signal SIGQUIT;').workerStopSignal, 'SIGQUIT');
  t.equal(conf('worker_stop_signal TERM;').workerStopSignal, 'SIGTERM');
  t.equal(conf('worker_stop_signal sigint;').workerStopSignal, 'SIGINT');
  t.equal(conf('worker_stop_signal USR2;').workerStopSignal, 'SIGUSR2');
  rejects(t, 'worker_stop_signal FOO;', 'invalid value "FOO" in "worker_stop_signal" directive, unknown signal in /etc/x.conf:1');
  rejects(t, 'worker_stop_signal 15;', 'invalid value "15" in "worker_stop_signal" directive, unknown signal in /etc/x.conf:1');
  rejects(t, 'worker_stop_signal SIG;', 'invalid value "SIG" in "worker_stop_signal" directive, unknown signal in /etc/x.conf:1');
  rejects(t, 'worker_stop_signal constructor;', 'invalid value "constructor" in "worker_stop_signal" directive, unknown signal in /etc/x.conf:1');
});

t.test('ready_timeout', async (t) => {
  t.equal(conf('ready_timeout 5s;').readyTimeoutMs, 5000);
  t.equal(conf('ready_timeout 2m;').readyTimeoutMs, 120_000);
  rejects(t, 'ready_timeout 0;', 'invalid value "0" in "ready_timeout" directive, it must be greater than 0 in /etc/x.conf:1');
  rejects(t, 'ready_timeout soon;', 'invalid value "soon" in "ready_timeout" directive in /etc/x.conf:1');
});

t.test('env', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  });
  process.env.TSM_PASSED = 'from-master';
  process.env.TSM_SECRET = 'must-not-leak';
  delete process.env.TSM_UNSET;
  process.env.TZ = 'Europe/Paris';
  process.env.NODE_ENV = 'production';
  const c = conf('env TSM_PASSED;\nenv TSM_UNSET;\nenv A=b=c;\nenv EMPTY=;\nenv TZ=UTC;\nenv "SPACED=a b";');
  t.equal(c.env.TSM_PASSED, 'from-master');
  t.notOk('TSM_SECRET' in c.env, 'the master environment is not inherited');
  t.notOk('TSM_UNSET' in c.env, 'a name the master does not have is left out');
  t.equal(c.env.A, 'b=c');
  t.equal(c.env.EMPTY, '');
  t.equal(c.env.TZ, 'UTC', 'env overrides a default');
  t.equal(c.env.NODE_ENV, 'production');
  t.equal(c.env.SPACED, 'a b');
  t.equal(c.env.PATH, process.env.PATH);
  const d = conf('');
  t.same(Object.keys(d.env).sort(), ['HOME', 'LANG', 'NODE_ENV', 'PATH', 'TZ'].filter((k) => process.env[k] !== undefined).sort());
  t.equal(conf('env X=1;\nenv X=2;').env.X, '2', 'the last one wins');
  const nobody = readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === 'nobody');
  if (nobody) {
    const u = conf('user nobody;').env;
    t.same([u.HOME, u.USER, u.LOGNAME], [nobody[5], 'nobody', 'nobody'], "workers running as `user` get its HOME, not the master's");
    t.equal(conf('user nobody;\nenv HOME=/srv/app;').env.HOME, '/srv/app', 'an explicit env HOME wins');
  }
  delete process.env.TZ;
  t.notOk('TZ' in conf('env TZ=x;\nenv TZ;').env, 'the last one wins, also when it removes');
  rejects(t, 'env =x;', 'invalid value "=x" in "env" directive in /etc/x.conf:1');
  rejects(t, 'env "";', 'invalid value "" in "env" directive in /etc/x.conf:1');
  rejects(t, 'env A B;', 'invalid number of arguments in "env" directive in /etc/x.conf:1');
});

t.test('listen', async (t) => {
  const one = (addr: string) => conf(`listen ${addr};`).listens[0]!;
  const source = { file: SRC, line: 1 };
  t.test('address forms', async (t) => {
    const tcp = (host: string, port: number, key: string, ipv6Only = false) => ({
      kind: 'tcp', host, port, ipv6Only, backlog: 511, reuseport: false, name: key.slice(4), key, source,
    });
    t.same(one('8080'), tcp('0.0.0.0', 8080, 'tcp:0.0.0.0:8080'));
    t.same(one('*:8080'), tcp('0.0.0.0', 8080, 'tcp:0.0.0.0:8080'));
    t.same(one('0.0.0.0:8080'), tcp('0.0.0.0', 8080, 'tcp:0.0.0.0:8080'));
    t.same(one('127.0.0.1:8080'), tcp('127.0.0.1', 8080, 'tcp:127.0.0.1:8080'));
    t.same(one('localhost:8080'), tcp('127.0.0.1', 8080, 'tcp:127.0.0.1:8080'));
    t.same(one('LocalHost:1'), tcp('127.0.0.1', 1, 'tcp:127.0.0.1:1'));
    t.same(one('[::1]:8080'), tcp('::1', 8080, 'tcp:[::1]:8080', true));
    t.same(one('[::]:80'), tcp('::', 80, 'tcp:[::]:80', true));
    t.same(one('[0:0:0:0:0:0:0:1]:80'), tcp('::1', 80, 'tcp:[::1]:80', true), 'IPv6 is canonicalized');
    t.same(one('[2001:DB8::A]:80'), tcp('2001:db8::a', 80, 'tcp:[2001:db8::a]:80', true));
    t.same(one('[::ffff:127.0.0.1]:80'), tcp('::ffff:7f00:1', 80, 'tcp:[::ffff:7f00:1]:80', true));
    t.same(one('0'), tcp('0.0.0.0', 0, 'tcp:0.0.0.0:0'));
    t.same(one('65535'), tcp('0.0.0.0', 65535, 'tcp:0.0.0.0:65535'));
    t.same(one('unix:/run/app.sock'), {
      kind: 'unix', path: '/run/app.sock', mode: null, backlog: 511, reuseport: false, name: 'unix:/run/app.sock', key: 'unix:/run/app.sock', source,
    });
    const rel = one('unix:run/app.sock');
    t.equal(rel.kind, 'unix');
    t.equal(rel.kind === 'unix' && rel.path, join(FIX, 'run/app.sock'), 'relative to the prefix');
    t.equal(rel.key, `unix:${join(FIX, 'run/app.sock')}`);
    t.equal(rel.name, rel.key);
    t.equal(one('unix:/a/../b.sock').key, 'unix:/b.sock');
  });
  t.test('address errors', async (t) => {
    const bad = (addr: string, err: string) =>
      rejects(t, `listen ${addr};`, `${err} in "${addr}" of the "listen" directive in /etc/x.conf:1`);
    bad('example.com:80', 'host not found');
    bad('127.1:80', 'host not found');
    bad('127.0.0.1', 'no port');
    bad('localhost', 'no port');
    bad('[::1]', 'no port');
    bad('127.0.0.1:', 'no port');
    bad('127.0.0.1:65536', 'invalid port');
    bad('65536', 'invalid port');
    bad('127.0.0.1:http', 'invalid port');
    bad('127.0.0.1:-1', 'invalid port');
    bad('[::1]8080', 'invalid port');
    bad('[::1', 'invalid IPv6 address');
    bad('[::g]:80', 'invalid IPv6 address');
    bad('[fe80::1%eth0]:80', 'invalid IPv6 address');
    bad('[127.0.0.1]:80', 'invalid IPv6 address');
    bad('::1:80', 'invalid IPv6 address, use [address]:port');
    bad('::1', 'invalid IPv6 address, use [address]:port');
    bad(':80', 'no host');
    bad('unix:', 'no path');
    bad(`unix:/${'a'.repeat(107)}`, 'path longer than 107 bytes');
    rejects(t, 'listen "";', 'no host in "" of the "listen" directive in /etc/x.conf:1');
  });
  t.test('parameters', async (t) => {
    const l = one('127.0.0.1:8080 reuseport backlog=1024 name=web');
    t.match(l, { kind: 'tcp', reuseport: true, backlog: 1024, name: 'web', key: 'tcp:127.0.0.1:8080' });
    t.match(one('[::]:80 ipv6only=off'), { ipv6Only: false });
    t.match(one('[::]:80 ipv6only=on'), { ipv6Only: true });
    t.match(one('unix:/run/a.sock mode=0660 backlog=5'), { kind: 'unix', mode: 0o660, backlog: 5 });
    t.match(one('unix:/run/a.sock mode=600'), { mode: 0o600 });
    t.match(one('unix:/run/a.sock mode=1777'), { mode: 0o1777 });
    t.match(one('8080 "name=my socket"'), { name: 'my socket' });
    t.match(one('8080 name="x'), { name: '"x' }, 'a quote inside a word is kept');
    const p = (params: string, msg: string) => rejects(t, `listen ${params};`, `${msg} in /etc/x.conf:1`);
    p('8080 ssl', 'invalid parameter "ssl" in "listen" directive');
    p('8080 backlog', 'invalid parameter "backlog" in "listen" directive');
    p('8080 reuseport=on', 'invalid parameter "reuseport=on" in "listen" directive');
    p('8080 backlog=abc', 'invalid value "backlog=abc" in "listen" directive');
    p('8080 backlog=0', 'invalid value "backlog=0" in "listen" directive');
    p('8080 backlog=1 backlog=2', 'duplicate parameter "backlog" in "listen" directive');
    p('8080 reuseport reuseport', 'duplicate parameter "reuseport" in "listen" directive');
    p('8080 mode=0660', '"mode" parameter is not supported on addr "0.0.0.0:8080"');
    p('unix:/run/a.sock mode=8', 'invalid value "mode=8" in "listen" directive, it must be 3 or 4 octal digits');
    p('unix:/run/a.sock mode=06600', 'invalid value "mode=06600" in "listen" directive, it must be 3 or 4 octal digits');
    p('unix:/run/a.sock mode=rw', 'invalid value "mode=rw" in "listen" directive, it must be 3 or 4 octal digits');
    p('unix:/run/a.sock reuseport', '"reuseport" parameter is not supported on addr "unix:/run/a.sock"');
    p('unix:/run/a.sock ipv6only=on', '"ipv6only" parameter is not supported on addr "unix:/run/a.sock"');
    p('127.0.0.1:80 ipv6only=off', '"ipv6only" parameter is not supported on addr "127.0.0.1:80"');
    p('[::]:80 ipv6only=yes', 'invalid value "ipv6only=yes" in "listen" directive, it must be "on" or "off"');
    p('8080 name=', 'invalid value "name=" in "listen" directive, it must be 1 to 255 printable ASCII characters without ":"');
    p('8080 name=a:b', 'invalid value "name=a:b" in "listen" directive, it must be 1 to 255 printable ASCII characters without ":"');
    p(`8080 name=${'n'.repeat(256)}`, `invalid value "name=${'n'.repeat(256)}" in "listen" directive, it must be 1 to 255 printable ASCII characters without ":"`);
  });
  t.test('several sockets, duplicates', async (t) => {
    const c = conf('listen 8080;\nlisten [::]:8080;\nlisten 127.0.0.1:8081;\nlisten unix:a.sock;\nlisten 127.0.0.1:0;\nlisten 127.0.0.1:0;');
    t.same(c.listens.map((l) => [l.key, l.source.line]), [
      ['tcp:0.0.0.0:8080', 1], ['tcp:[::]:8080', 2], ['tcp:127.0.0.1:8081', 3], [`unix:${join(FIX, 'a.sock')}`, 4], ['tcp:127.0.0.1:0', 5], ['tcp:127.0.0.1:0', 6],
    ]);
    rejects(t, 'listen 127.0.0.1:8080;\n\nlisten 127.0.0.1:8080 reuseport;', 'duplicate listen "127.0.0.1:8080" in /etc/x.conf:3', { file: SRC, line: 3 });
    rejects(t, 'listen 8080;\nlisten *:8080;', 'duplicate listen "0.0.0.0:8080" in /etc/x.conf:2');
    rejects(t, 'listen localhost:80;\nlisten 127.0.0.1:80;', 'duplicate listen "127.0.0.1:80" in /etc/x.conf:2');
    rejects(t, 'listen [::1]:80;\nlisten [0::1]:80;', 'duplicate listen "[::1]:80" in /etc/x.conf:2');
    rejects(t, `listen unix:a.sock;\nlisten unix:${FIX}/a.sock;`, `duplicate listen "unix:${join(FIX, 'a.sock')}" in /etc/x.conf:2`);
    rejects(t, 'listen 1 name=web;\nlisten 2 name=web;', 'duplicate listen name "web" in /etc/x.conf:2');
    rejects(t, 'listen 1 name=0.0.0.0:2;\nlisten 2;', 'invalid value "name=0.0.0.0:2" in "listen" directive, it must be 1 to 255 printable ASCII characters without ":" in /etc/x.conf:1');
    t.equal(conf('listen 0;\nlisten 0;').listens.length, 2, 'port 0 is never a duplicate');
  });
  t.test('required', async (t) => {
    const err = confError(() => parseConfigText('app app.js;', SRC, FIX));
    t.equal(err.message, '"listen" directive is required in /etc/x.conf');
    t.equal(err.line, 0);
    t.equal(err.file, SRC);
  });
});

t.test('app', async (t) => {
  t.same(conf('app app.js;').worker, { kind: 'app', path: APP });
  t.same(conf(`app ${APP};`).worker, { kind: 'app', path: APP });
  rejects(t, 'app nope.js;', `stat() "${join(FIX, 'nope.js')}" failed (2: No such file or directory) in /etc/x.conf:1`, { file: SRC, line: 1 });
  rejects(t, 'app conf.d;', `invalid value "conf.d" in "app" directive, "${join(FIX, 'conf.d')}" is a directory in /etc/x.conf:1`);
  rejects(t, 'app "";', 'invalid value "" in "app" directive in /etc/x.conf:1');
  rejects(t, 'app app.js;\nexec /bin/true;', '"app" and "exec" directives are mutually exclusive in /etc/x.conf:2');
  rejects(t, 'exec /bin/true;\napp app.js;', '"app" and "exec" directives are mutually exclusive in /etc/x.conf:2');
  const err = confError(() => parseConfigText('listen 8080;', SRC, FIX));
  t.equal(err.message, '"app" or "exec" directive is required in /etc/x.conf');
  t.equal(err.line, 0);
});

t.test('exec', async (t) => {
  t.same(conf('exec server --port "a b";').worker, { kind: 'exec', argv: ['server', '--port', 'a b'] }, 'a bare name is kept for PATH lookup');
  t.same(conf('exec /usr/bin/server;').worker, { kind: 'exec', argv: ['/usr/bin/server'] });
  t.same(conf('exec bin/server ./x;').worker, { kind: 'exec', argv: [join(FIX, 'bin/server'), './x'] }, 'a relative path is taken from the prefix');
  t.same(conf('exec ./server;').worker, { kind: 'exec', argv: [join(FIX, 'server')] });
  rejects(t, 'exec "";', 'invalid value "" in "exec" directive in /etc/x.conf:1');
  rejects(t, 'exec a;\nexec b;', '"exec" directive is duplicate in /etc/x.conf:2');
});

t.test('control_socket', async (t) => {
  t.equal(conf('control_socket run/ctl.sock;').controlSocket, join(FIX, 'run/ctl.sock'));
  t.equal(conf('control_socket /run/ctl.sock;').controlSocket, '/run/ctl.sock');
  t.equal(conf('control_socket off;').controlSocket, null);
  t.equal(conf('pid /run/t/t.pid;').controlSocket, '/run/t/t.pid.sock', 'follows pid');
  const long = `/${'d'.repeat(100)}/x.sock`;
  rejects(t, `control_socket ${long};`, `invalid value "${long}" in "control_socket" directive, the socket path "${long}" is longer than 107 bytes in /etc/x.conf:1`);
  const longPid = `/${'d'.repeat(100)}/t.pid`;
  t.equal(conf(`pid ${longPid};`).controlSocket, `${longPid}.sock`, 'the default is not checked for length');
  t.equal(conf(`pid ${longPid};\ncontrol_socket off;`).controlSocket, null);
});

t.test('loadConfig with include', async (t) => {
  const c = loadConfig({ file: 'main.conf', prefix: FIX });
  t.equal(c.file, join(FIX, 'main.conf'), 'relative file is taken from the prefix');
  t.equal(c.pid, join(FIX, 'run/tsmaster.pid'));
  t.same(c.errorLog, { path: join(FIX, 'logs/main.log'), level: 'info' });
  t.equal(c.workerProcesses, 2);
  t.equal(c.workerShutdownTimeoutMs, 5000, 'nested relative include');
  t.equal(c.env.TSM_FROM_10, 'ten');
  t.equal(c.env.TSM_FROM_20, 'twenty');
  t.notOk('TSM_HIDDEN' in c.env, 'dot files do not match *');
  t.notOk('TSM_NOT_CONF' in c.env, 'only matching names');
  t.same(c.listens.map((l) => [l.key, l.source.file, l.source.line]), [
    ['tcp:127.0.0.1:0', join(FIX, 'main.conf'), 6],
    [`unix:${join(FIX, 'run/app.sock')}`, join(FIX, 'conf.d/20-listen.conf'), 2],
  ]);
  t.same(loadConfig({ file: join(FIX, 'main.conf'), prefix: FIX }), c, 'absolute file');
});

t.test('include errors', async (t) => {
  const load = (file: string, globals?: string) => confError(() => loadConfig({ file, prefix: FIX, globals }));
  let err = load('absent.conf');
  t.equal(err.message, `open() "${join(FIX, 'absent.conf')}" failed (2: No such file or directory)`);
  t.equal(err.file, join(FIX, 'absent.conf'));
  t.equal(err.line, 0);
  err = load('missing-include.conf');
  t.equal(err.message, `open() "${join(FIX, 'nothing-here.conf')}" failed (2: No such file or directory) in ${join(FIX, 'missing-include.conf')}:2`);
  t.equal(err.file, join(FIX, 'missing-include.conf'));
  t.equal(err.line, 2);
  err = load('cycle-a.conf');
  t.equal(err.message, `recursive include of "${join(FIX, 'cycle-a.conf')}" in ${join(FIX, 'cycle-b.conf')}:2`);
  err = load('self.conf');
  t.equal(err.message, `recursive include of "${join(FIX, 'self.conf')}" in ${join(FIX, 'self.conf')}:3`);
  err = load('bad-star.conf');
  t.equal(err.message, `invalid value "*/x.conf" in "include" directive, "*" is only allowed in the last path component in ${join(FIX, 'bad-star.conf')}:3`);
  err = load('error-in-include.conf');
  t.equal(err.message, `invalid value "many" in "worker_processes" directive in ${join(FIX, 'errors/bad.conf')}:3`);
  t.equal(err.file, join(FIX, 'errors/bad.conf'));
  t.equal(err.line, 3);
  err = load('conf.d');
  t.equal(err.message, `"${join(FIX, 'conf.d')}" is not a regular file`);
  t.ok(loadConfig({ file: 'glob-none.conf', prefix: FIX }), 'a pattern that matches nothing is not an error');
  rejects(t, 'include a b;', 'invalid number of arguments in "include" directive in /etc/x.conf:1');
  rejects(t, 'include;', 'invalid number of arguments in "include" directive in /etc/x.conf:1');
  rejects(t, 'include "";', 'invalid value "" in "include" directive in /etc/x.conf:1');
});

t.test('include through a symlink cycle and a temporary tree', async (t) => {
  const dir = t.testdir({
    'a.conf': 'app app.js;\nlisten 0;\ninclude inc/*.conf;\n',
    'app.js': 'export default () => {}\n',
    inc: { '1.conf': 'env ONE=1;\n', '2.conf': 'include ../loop/*.conf;\n' },
    loop: {},
  });
  symlinkSync(join(dir, 'a.conf'), join(dir, 'loop/back.conf'));
  const err = confError(() => loadConfig({ file: 'a.conf', prefix: dir }));
  t.equal(err.message, `recursive include of "${join(dir, 'loop/back.conf')}" in ${join(dir, 'inc/2.conf')}:1`);
  writeFileSync(join(dir, 'inc/2.conf'), 'env TWO=2;\n');
  symlinkSync(join(dir, 'nowhere'), join(dir, 'inc/3.conf'));
  t.equal(confError(() => loadConfig({ file: 'a.conf', prefix: dir })).message,
    `open() "${join(dir, 'inc/3.conf')}" failed (2: No such file or directory) in ${join(dir, 'a.conf')}:3`, 'dangling symlink');
  rmSync(join(dir, 'inc/3.conf'));
  mkdirSync(join(dir, 'inc/3.conf'));
  const c = loadConfig({ file: 'a.conf', prefix: dir });
  t.equal(c.env.ONE, '1');
  t.equal(c.env.TWO, '2');
  // the same file twice without a cycle is allowed (its directives then count twice)
  writeFileSync(join(dir, 'b.conf'), 'app app.js;\ninclude inc/1.conf;\ninclude inc/1.conf;\nlisten 0;\n');
  t.equal(loadConfig({ file: 'b.conf', prefix: dir }).env.ONE, '1');
});

t.test('parseConfigText includes', async (t) => {
  const c = parseConfigText('include conf.d/10-env.conf;\napp app.js;\nlisten 0;', 'inline', FIX);
  t.equal(c.env.TSM_FROM_10, 'ten', 'relative to the prefix when the source is not a path');
  const d = parseConfigText('include sub/inner.conf;\nexec x;\nlisten 0;', join(FIX, 'virtual.conf'), '/nonexistent');
  t.equal(d.workerShutdownTimeoutMs, 5000, 'relative to the directory of an absolute source');
});

t.test('-g globals', async (t) => {
  const c = loadConfig({ file: 'main.conf', prefix: FIX, globals: 'daemon off; worker_heartbeat_timeout off;' });
  t.equal(c.daemon, false);
  t.equal(c.workerHeartbeatTimeoutMs, null);
  const g = (file: string, globals: string) => confError(() => loadConfig({ file, prefix: FIX, globals }));
  let err = g('main.conf', 'daemon off; worker_processes 3;');
  t.equal(err.message, '"worker_processes" directive is duplicate in command line');
  t.equal(err.file, 'command line');
  t.equal(err.line, 1);
  err = g('daemon-on.conf', 'daemon off;');
  t.equal(err.message, '"daemon" directive is duplicate in command line');
  err = g('daemon-on.conf', 'worker_processes x;');
  t.equal(err.message, 'invalid value "x" in "worker_processes" directive in command line');
  err = g('daemon-on.conf', 'worker_processes 3');
  t.equal(err.message, 'unexpected end of parameter, expecting ";" in command line');
  err = g('daemon-on.conf', 'listn 80;');
  t.equal(err.message, 'unknown directive "listn" in command line');
  err = g('daemon-on.conf', 'listen 127.0.0.1:8080 bogus;');
  t.equal(err.message, 'invalid parameter "bogus" in "listen" directive in command line');
  err = g('daemon-on.conf', 'include nothing-here.conf;');
  t.equal(err.message, `open() "${join(FIX, 'nothing-here.conf')}" failed (2: No such file or directory) in command line`);
  err = g('daemon-on.conf', 'exec /bin/true;');
  t.equal(err.message, '"app" and "exec" directives are mutually exclusive in command line');
  const h = loadConfig({ file: 'daemon-on.conf', prefix: FIX, globals: 'listen 127.0.0.1:9999; env G=1; include sub/inner.conf;' });
  t.same(h.listens.map((l) => [l.key, l.source.file]), [['tcp:0.0.0.0:0', join(FIX, 'daemon-on.conf')], ['tcp:127.0.0.1:9999', 'command line']]);
  t.equal(h.env.G, '1');
  t.equal(h.workerShutdownTimeoutMs, 5000, 'include in -g is relative to the main file');
  t.same(loadConfig({ file: 'no-app.conf', prefix: FIX, globals: 'app app.js;' }).worker, { kind: 'app', path: APP });
  t.same(loadConfig({ file: 'daemon-on.conf', prefix: FIX, globals: '' }), loadConfig({ file: 'daemon-on.conf', prefix: FIX }));
});

t.test('errors stop at the first problem in file order', async (t) => {
  rejects(t, 'worker_processes x;\nlistn 1;', 'invalid value "x" in "worker_processes" directive in /etc/x.conf:1');
  rejects(t, 'listn 1;\nworker_processes x;', 'unknown directive "listn" in /etc/x.conf:1');
  const err = confError(() => parseConfigText('daemon maybe;', SRC, FIX));
  t.equal(err.message, 'invalid value "maybe" in "daemon" directive, it must be "on" or "off" in /etc/x.conf:1', 'value errors come before missing directives');
});

// Defaults that are no value one could write: none, or a phrase.
const NOT_WRITABLE: Record<string, string> = {
  user: 'none', worker_rlimit_nofile: 'none', worker_cpu_affinity: 'none', worker_priority: 'none',
  env: 'none', env_file: 'none', listen: 'none', app: 'none', exec: 'none', include: 'none', worker_log: 'same as error_log; with user, a file of its own beside it',
};
const BASE = 'listen 8080;\napp app.js;\n';

// The man page shows each directive's default (test/man.test.ts checks it against the table);
// here the table's default, written in the file, must give the config that no directive gives.
t.test('every documented default is the value a config without the directive gets', async (t) => {
  const without = parseConfigText(BASE, SRC, FIX);
  for (const d of directives) {
    if (NOT_WRITABLE[d.name] !== undefined) {
      t.equal(d.default, NOT_WRITABLE[d.name], `${d.name}: its default is described, not written`);
      continue;
    }
    const withDefault = parseConfigText(`${BASE}${d.name} ${d.default};\n`, SRC, FIX);
    t.same(withDefault, without, `${d.name} ${d.default}; changes nothing`);
  }
});

// In-process, per definition: the typed default (or, for one that follows other directives,
// what it follows to in a config of defaults) is what its own parser makes of its default text.
t.test('every typed default is what its parser makes of its documented default', async (t) => {
  const without = parseConfigText(BASE, SRC, FIX);
  for (const def of definitions) {
    if (def.multiple) continue; // their `none` is no occurrence at all
    const typed = 'fallback' in def ? def.fallback(FIX) : def.follow(without);
    if (def.default === 'none') t.equal(typed, null, `${def.name}: none`);
    else if (NOT_WRITABLE[def.name] === undefined) t.same(def.parse(occurrence(def.name, def.default), FIX), typed, `${def.name} ${def.default};`);
  }
});
