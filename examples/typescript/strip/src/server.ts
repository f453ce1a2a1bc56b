// Run as it is: Node 22.18+ and 24 strip the types (or tsx compiles it, on any Node). Only
// syntax that can be erased (erasableSyntaxOnly: no enum, namespace or parameter property),
// `import type` for types, and relative imports that name the .ts file.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { greeting } from './greeting.ts';

export default function handler(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'text/plain');
  // Stripping keeps every line and column where it was: stack traces name src/server.ts.
  if (req.url === '/where') return void res.end(new Error('here').stack);
  res.end(greeting(process.env.TSMASTER_WORKER_ID));
}
