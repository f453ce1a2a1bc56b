'use strict';
// Node's cluster module serving server.cjs with $BENCH_WORKERS workers. The scheduling
// policy comes from NODE_CLUSTER_SCHED_POLICY ("rr" or "none"), read by Node at start-up.
const cluster = require('node:cluster');

if (cluster.isPrimary) {
  const n = Number(process.env.BENCH_WORKERS) || 2;
  let listening = 0;
  let stopping = false;
  cluster.on('listening', () => {
    if (++listening === n) process.stdout.write(`ready ${cluster.schedulingPolicy === cluster.SCHED_RR ? 'rr' : 'none'}\n`);
  });
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) process.stderr.write(`worker ${w.process.pid} exited (${signal || code})\n`);
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
    setTimeout(() => process.exit(0), 200);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  for (let i = 0; i < n; i++) cluster.fork({ BENCH_SAY_READY: '0' });
} else {
  require('./server.cjs');
}
