// A TCP proxy that caps the bytes per second it passes from a server to its clients, all
// connections together: a rate-limited or far-away upstream registry on loopback. TLS passes
// through untouched (the upstream's certificate names 127.0.0.1, so any port on it matches).
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ThrottledProxyOptions {
  /** Where the server listens. */
  readonly target: { host: string; port: number };
  /** Downstream bytes per second, shared by every connection. */
  readonly bytesPerSecond: number;
  /** Where the proxy listens. @default - 127.0.0.1, a free port */
  readonly listen?: { host: string; port: number };
}

export class ThrottledProxy {
  /** Bytes passed from the server to clients. */
  bytes = 0;
  private readonly sockets = new Set<Socket>();
  private available = 0;
  private last = Date.now();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly opts: ThrottledProxyOptions,
  ) {}

  static async start(opts: ThrottledProxyOptions): Promise<ThrottledProxy> {
    const self: { proxy?: ThrottledProxy } = {};
    const server = createServer((client) => self.proxy!.accept(client));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.listen?.port ?? 0, opts.listen?.host ?? '127.0.0.1', () =>
        resolve((server.address() as { port: number }).port),
      );
    });
    self.proxy = new ThrottledProxy(server, port, opts);
    return self.proxy;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Wait until `n` bytes may pass (a token bucket holding at most 50 ms of bytes). */
  private async take(n: number): Promise<void> {
    const rate = this.opts.bytesPerSecond;
    for (;;) {
      const now = Date.now();
      this.available = Math.min(rate / 20, this.available + ((now - this.last) / 1000) * rate);
      this.last = now;
      if (this.available >= Math.min(n, rate / 20)) {
        this.available -= n;
        return;
      }
      await sleep(Math.max(1, ((Math.min(n, rate / 20) - this.available) / rate) * 1000));
    }
  }

  private accept(client: Socket): void {
    const server = createConnection(this.opts.target);
    for (const s of [client, server]) {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        server.destroy();
      });
    }
    client.pipe(server);
    // Server -> client through the bucket, one chunk at a time.
    const chain = { p: Promise.resolve() };
    server.on('data', (chunk: Buffer) => {
      server.pause();
      chain.p = chain.p.then(async () => {
        await this.take(chunk.length);
        this.bytes += chunk.length;
        if (!client.destroyed) client.write(chunk);
        server.resume();
      });
    });
    server.on('end', () => void chain.p.then(() => client.end()));
    client.on('close', () => server.destroy());
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
