// "type": "module" and module nodenext: tsc writes ES modules, and relative imports name
// the .js file that tsc writes (not the .ts).
import http from 'node:http';
import { greeting } from './greeting.js';

// A server that is not listening yet: tsmaster listens it on the inherited sockets.
export default http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(greeting(process.env.TSMASTER_WORKER_ID));
});
