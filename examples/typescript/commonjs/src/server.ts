// tsc compiles `export default` to `exports.default = handler` (with `__esModule`):
// tsmaster takes that as the app, like `module.exports = handler`.
import type { IncomingMessage, ServerResponse } from 'node:http';

export default function handler(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'text/plain');
  // GET /where answers with a stack trace: with source maps on, it names src/server.ts.
  if (req.url === '/where') return void res.end(new Error('here').stack);
  res.end(`hello from commonjs, worker ${process.env.TSMASTER_WORKER_ID}\n`);
}
