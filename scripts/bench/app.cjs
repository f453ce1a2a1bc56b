'use strict';
// The hello-world app every configuration of the benchmark serves: a plain request
// listener. tsmaster loads it as its `app` (the default export of a CommonJS module is
// module.exports); server.cjs wraps it for one Node process, the cluster module and PM2.
//
// Each process counts the requests it answered and writes the count to
// $BENCH_STATS_DIR/<pid> a few times a second, so the benchmark can see how requests were
// spread over the workers whatever runs them.
const fs = require('node:fs');
const path = require('node:path');

const dir = process.env.BENCH_STATS_DIR;
let count = 0;
let written = -1;

function flush() {
  if (!dir || count === written) return;
  written = count;
  try {
    fs.writeFileSync(path.join(dir, String(process.pid)), String(count));
  } catch {
    // Counting is best effort; serving is not.
  }
}

if (dir) {
  setInterval(flush, 100).unref();
  process.on('exit', flush);
}

const body = 'Hello, world!\n';

module.exports = function hello(req, res) {
  count++;
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
};
