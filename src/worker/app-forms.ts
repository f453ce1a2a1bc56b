// The framework instances a worker knows how to serve and to close, as their users export
// them: Fastify and NestJS apps (ready/init, their server, close after the drain), a Koa app
// (its callback), a WHATWG fetch handler (`export default { fetch }`, as Hono exports).
import http from 'node:http';
import net from 'node:net';

/** What the worker serves, and what closes the framework once its connections are drained. */
export interface Served {
  server: net.Server;
  close: (() => Promise<void>) | null;
}

type Fn = (...args: never[]) => unknown;
const has = (v: object, ...names: string[]): boolean => names.every((n) => typeof (v as Record<string, unknown>)[n] === 'function');

/** Fastify 4/5: `fastify()` itself. */
function isFastify(v: object): v is { ready(): Promise<unknown>; close(): Promise<unknown>; server: net.Server } {
  return has(v, 'ready', 'close', 'addHook', 'inject') && (v as { server?: unknown }).server instanceof net.Server;
}

/** NestJS: an INestApplication from NestFactory.create, not yet listening. */
function isNest(v: object): v is { init(): Promise<unknown>; getHttpServer(): unknown; close(): Promise<unknown> } {
  return has(v, 'init', 'getHttpServer', 'close', 'useGlobalPipes');
}

/** Koa: the app instance (`app.callback()` is the request listener). */
function isKoa(v: object): v is { callback(): http.RequestListener } {
  return has(v, 'callback', 'use') && !(v instanceof net.Server);
}

function isFetchHandler(v: object): v is { fetch: Fn } {
  return has(v, 'fetch');
}

/** The server of a framework instance, or null when `v` is none of them. */
export async function serveFramework(v: unknown): Promise<Served | null> {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return null;
  if (isFastify(v)) {
    await v.ready();
    return { server: v.server, close: async () => void (await v.close()) };
  }
  if (isNest(v)) {
    await v.init();
    const server = v.getHttpServer();
    if (!(server instanceof net.Server)) return null;
    return { server, close: async () => void (await v.close()) };
  }
  if (isKoa(v)) return { server: http.createServer(v.callback()), close: null };
  if (typeof v === 'object' && isFetchHandler(v)) {
    // @hono/node-server's adapter: Node's request and response as WHATWG Request and Response.
    const { getRequestListener } = await import('@hono/node-server');
    const fetch = v.fetch.bind(v) as unknown as Parameters<typeof getRequestListener>[0];
    return { server: http.createServer(getRequestListener(fetch)), close: null };
  }
  return null;
}
