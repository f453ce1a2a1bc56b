import http from 'node:http';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { TsmError } from '../errors.js';
import type { FdDescription } from '../protocol.js';
import type { Listener, WorkerApp, WorkerContext } from './api.js';
import { serveFramework } from './app-forms.js';
import { lifecycle, onClose, onDrain, onShutdown } from './lifecycle.js';
import type { ConnectionTracker } from './drain.js';
import type { LogLevel } from '../config/types.js';

type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** Everything the runtime opened, so a graceful stop can close it. */
export interface Serving {
  servers: net.Server[];
  /** Framework closes (Fastify's, Nest's), once every connection is drained: their hooks may end what requests need. */
  closes: Array<() => Promise<void>>;
}

function listenFd(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Listen `server` on every given fd. A server can own one handle only, so each further fd
 * gets a plain net.Server that hands its connections to `server` ('connection' is how
 * http, https and net servers all take a socket).
 */
export async function serveOn(server: net.Server, listeners: readonly Listener[], serving: Serving, tracker: ConnectionTracker): Promise<void> {
  tracker.track(server);
  const [first, ...rest] = listeners;
  if (!first) throw new TsmError('TSM_ERR_APP', 'no listening socket to serve on');
  serving.servers.push(server);
  await listenFd(server, first.fd);
  for (const l of rest) {
    const forwarder = net.createServer((socket) => server.emit('connection', socket));
    serving.servers.push(forwarder);
    await listenFd(forwarder, l.fd);
  }
}

function isServer(v: unknown): v is net.Server {
  return v instanceof net.Server;
}

/**
 * What the module exports by default. A CommonJS module's default is its `module.exports`;
 * tsc's output for `export default app` is `exports.default = app` beside `__esModule`, so
 * there the app is one level down, as a bundler or tsx would take it.
 */
export function defaultExport(mod: { default?: unknown }): unknown {
  const d = mod.default;
  if ((typeof d === 'object' || typeof d === 'function') && d !== null && (d as { __esModule?: unknown }).__esModule === true && 'default' in d) {
    return (d as { default: unknown }).default;
  }
  return d;
}

function isApp(v: unknown): v is WorkerApp {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as WorkerApp).start === 'function';
}

/** Load the app module and start serving it; resolves when the worker is ready. */
export async function startApp(opts: {
  app: string;
  id: number;
  generation: number;
  listeners: FdDescription[];
  tracker: ConnectionTracker;
  log: (level: LogLevel, message: string) => void;
}): Promise<Serving> {
  const serving: Serving = { servers: [], closes: [] };
  // A drain handler, from ctx or from the package, makes upgraded connections the app's to close.
  lifecycle().onDrainRegistered = () => opts.tracker.leaveUpgradedToApp();
  if (lifecycle().drainHooks.length > 0) opts.tracker.leaveUpgradedToApp();
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(opts.app).href)) as { default?: unknown };
  } catch (err) {
    throw new TsmError('TSM_ERR_APP', `app "${opts.app}" failed to load: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, { cause: err });
  }
  // `export default NestFactory.create(…)`: the promise of an app.
  const exported: unknown = await defaultExport(mod);
  if (isApp(exported)) {
    const ctx: WorkerContext = {
      id: opts.id,
      generation: opts.generation,
      listeners: opts.listeners,
      serve: (server, names) =>
        serveOn(server, names ? opts.listeners.filter((l) => names.includes(l.name)) : opts.listeners, serving, opts.tracker),
      onShutdown,
      onClose,
      onDrain,
      log: opts.log,
    };
    await exported.start(ctx);
  } else if (isServer(exported)) {
    if (exported.listening) throw new TsmError('TSM_ERR_APP', `app "${opts.app}" exports a server that is already listening`);
    await serveOn(exported, opts.listeners, serving, opts.tracker);
  } else if (typeof exported === 'function' && !(await serveFrameworkOn(exported))) {
    await serveOn(http.createServer(exported as RequestListener), opts.listeners, serving, opts.tracker);
  } else if (typeof exported !== 'function' && !(await serveFrameworkOn(exported))) {
    throw new TsmError(
      'TSM_ERR_APP',
      `app "${opts.app}" must export by default (export default, module.exports, or exports.default with __esModule) a request listener, an http/https/net server that is not listening, a Fastify, NestJS or Koa app, a fetch handler ({ fetch }), or an object with start(ctx)`,
    );
  }
  return serving;

  async function serveFrameworkOn(v: unknown): Promise<boolean> {
    const served = await serveFramework(v);
    if (!served) return false;
    if (served.server.listening) throw new TsmError('TSM_ERR_APP', `app "${opts.app}" exports a server that is already listening`);
    await serveOn(served.server, opts.listeners, serving, opts.tracker);
    if (served.close) serving.closes.push(served.close);
    return true;
  }
}

/** Stop accepting on every server without touching its open connections. */
export function stopListening(serving: Serving): void {
  for (const server of serving.servers) {
    // http.Server#close() also closes idle keep-alive sockets, which races clients that are
    // about to reuse them; net.Server's close only stops accepting.
    if (server.listening) net.Server.prototype.close.call(server);
  }
}
