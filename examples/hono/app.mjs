// A WHATWG fetch handler under tsmaster (Hono's app, or any `{ fetch }`): tsmaster serves
// it through @hono/node-server's adapter.
import { Hono } from 'hono';
import { onShutdown } from 'tsmaster';

const app = new Hono();
app.get('/', (c) => c.text(`hono ${process.pid}\n`));
onShutdown(() => console.log(`hono: shutdown hook ran in ${process.pid}`));

export default app;
