// Express 5 under tsmaster: the app itself is the request listener.
// tsmaster -p . -g 'daemon off; listen 8080; app examples/express/app.mjs;'
import express from 'express';
import { onShutdown } from 'tsmaster';

const app = express();
app.get('/', (req, res) => res.send(`express ${process.pid}\n`));

// After the worker stopped accepting: close what requests no longer need (a pool, a queue).
onShutdown(() => console.log(`express: shutdown hook ran in ${process.pid}`));

export default app;
