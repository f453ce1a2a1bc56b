// socket.io under tsmaster: export the http.Server; when the worker drains, disconnect
// every client from the server side, so each reconnects to a worker that stays.
import http from 'node:http';
import { Server } from 'socket.io';
import { onDrain } from 'tsmaster';

const server = http.createServer((req, res) => res.end(`socket.io ${process.pid}\n`));
const io = new Server(server);
io.on('connection', (socket) => socket.emit('hello', process.pid));
onDrain(() => {
  console.log(`socket.io: drain hook ran in ${process.pid}`);
  io.disconnectSockets(true);
});

export default server;
