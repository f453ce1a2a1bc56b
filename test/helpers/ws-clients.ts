// WebSocket clients for the drain tests and the bench's deploy stage (no tap here).
import WebSocket from 'ws';

/**
 * A client that is always connected: it reconnects at once after a close, a refused
 * handshake or an error. The close code of each connection that was open is counted.
 */
export class ReconnectingClient {
  ws: WebSocket | null = null;
  open = false;
  readonly closes = new Map<number, number>();
  refused = 0;
  readonly errors: string[] = [];
  private stopped = false;
  constructor(private readonly port: number) {
    this.connect();
  }
  private connect(): void {
    if (this.stopped) return;
    const ws = new WebSocket(`ws://127.0.0.1:${this.port}/`);
    this.ws = ws;
    let opened = false;
    let refused = false;
    ws.once('open', () => (opened = true));
    ws.once('message', () => (this.open = true));
    ws.once('unexpected-response', (_req, res) => {
      refused = true;
      this.refused++;
      res.resume();
      ws.terminate();
    });
    ws.once('error', (err) => {
      if (!refused && !this.stopped) this.errors.push(err.message);
    });
    ws.once('close', (code) => {
      this.open = false;
      if (this.stopped) return;
      if (opened) this.closes.set(code, (this.closes.get(code) ?? 0) + 1);
      setImmediate(() => this.connect());
    });
  }
  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}
