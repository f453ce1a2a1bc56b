// ws under tsmaster: export the http.Server; say goodbye (1001) when the worker drains.
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { onDrain } from 'tsmaster';

const server = http.createServer((req, res) => res.end(`ws ${process.pid}\n`));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.send(`hello ${process.pid}`));
onDrain(() => {
  console.log(`ws: drain hook ran in ${process.pid}, closing ${wss.clients.size} client(s)`);
  for (const ws of wss.clients) ws.close(1001, 'going away');
});

export default server;
