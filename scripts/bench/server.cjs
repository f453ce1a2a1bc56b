'use strict';
// app.cjs on an http.Server listening on $HOST:$PORT: one Node process, a cluster worker,
// or a PM2 cluster-mode instance.
const http = require('node:http');
const hello = require('./app.cjs');

const server = http.createServer(hello);
server.listen(Number(process.env.PORT), process.env.HOST || '127.0.0.1', () => {
  if (process.env.BENCH_SAY_READY === '1') process.stdout.write('ready\n');
});
