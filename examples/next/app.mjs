// Next.js with a custom server under tsmaster: the app is prepared at import (the worker is
// ready once it is), served as a plain http.Server, and closed by Next's own close() once the
// drain is over (onClose: after the last request). Build it first: `npm run build` here.
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import next from 'next';
import { onClose } from 'tsmaster';

const app = next({ dev: false, dir: path.dirname(fileURLToPath(import.meta.url)) });
await app.prepare();
const handle = app.getRequestHandler();
onClose(async () => {
  await app.close();
  console.log(`next: close ran in ${process.pid}`);
});

export default http.createServer((req, res) => handle(req, res));
