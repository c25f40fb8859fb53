// A TCP proxy on loopback between a client and a server (TLS passes through untouched) that can
// be told to black-hole: it keeps every connection open, accepts new ones, and drops every byte
// in both directions, as a dead load balancer or a lost conntrack entry does. Nothing fails
// fast: only deadlines notice.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface BlackholeProxyOptions {
  /** Where the server listens. */
  readonly target: { host: string; port: number };
}

interface Pair {
  readonly client: Socket;
  readonly server: Socket;
  /** Dropped a byte: its stream is broken for good (a TLS record went missing). */
  broken: boolean;
}

export class BlackholeProxy {
  private readonly pairs = new Set<Pair>();
  private holing = false;
  /** Bytes dropped while black-holing, both directions. */
  dropped = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly opts: BlackholeProxyOptions,
  ) {}

  static async start(opts: BlackholeProxyOptions): Promise<BlackholeProxy> {
    const self: { proxy?: BlackholeProxy } = {};
    const server = createServer((client) => self.proxy!.accept(client));
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    self.proxy = new BlackholeProxy(server, port, opts);
    return self.proxy;
  }

  /** `https://127.0.0.1:<port>`: the API server's certificate names 127.0.0.1, so it matches. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** Open connections (each API request of client-node opens its own). */
  get connections(): number {
    return this.pairs.size;
  }

  /** Stop forwarding: keep every connection open and drop every byte. */
  blackhole(): void {
    this.holing = true;
  }

  /** Forward again. Connections that lost bytes are closed: their streams cannot recover. */
  forward(): void {
    this.holing = false;
    for (const p of this.pairs) {
      if (p.broken) {
        p.client.destroy();
        p.server.destroy();
      }
    }
  }

  private accept(client: Socket): void {
    const server = createConnection(this.opts.target);
    const pair: Pair = { client, server, broken: false };
    this.pairs.add(pair);
    const relay = (from: Socket, to: Socket) => {
      from.on('data', (chunk: Buffer) => {
        if (this.holing || pair.broken) {
          pair.broken = true;
          this.dropped += chunk.length;
          return;
        }
        to.write(chunk);
      });
      from.on('end', () => {
        if (!this.holing && !pair.broken) to.end();
      });
    };
    relay(client, server);
    relay(server, client);
    for (const s of [client, server]) {
      s.on('error', () => undefined);
      s.once('close', () => {
        // A black hole hides a close from the other side too.
        if (!this.holing && !pair.broken) (s === client ? server : client).destroy();
        if (client.destroyed && server.destroyed) this.pairs.delete(pair);
      });
    }
  }

  async stop(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.server.destroy();
    }
    this.pairs.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
