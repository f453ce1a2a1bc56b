// The sample app `npm start` serves: a plain request listener, as Express or Koa's
// callback would be.
import type { IncomingMessage, ServerResponse } from 'node:http';

export default function hello(req: IncomingMessage, res: ServerResponse): void {
  res.setHeader('content-type', 'text/plain');
  res.end(`hello from tsmaster worker ${process.pid}: ${req.method} ${req.url}\n`);
}
