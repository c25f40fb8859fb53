// A broken upstream on loopback: a TLS reverse proxy (the test CA's 127.0.0.1 certificate) in
// front of the real upstream Distribution that, for the blob digests it is told to, answers a
// GET with a 200 whose body does not match the digest in the URL. Everything else, and those
// digests once healed, pass through untouched (Authorization included). It stands for a CDN or
// registry that serves bad bytes with a good status.
//   corrupt:  the right length, one byte flipped
//   truncate: a shorter body, and a Content-Length (on HEAD and GET) that says so
//   cut:      the full Content-Length, then the connection closed halfway through the body
import { readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:https';
import type { Socket } from 'node:net';

import type { TestCA } from '../primitives/tls.js';

export type Fault = 'corrupt' | 'truncate' | 'cut';

export interface TamperOptions {
  readonly target: { host: string; port: number };
  readonly ca: TestCA;
}

const BLOB = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/;

export class TamperingUpstream {
  /** Blob GETs that reached the real upstream through this proxy, by digest. */
  readonly blobGets = new Map<string, number>();
  private readonly faults = new Map<string, Fault>();
  private readonly sockets = new Set<Socket>();
  private readonly agent: Agent;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly opts: TamperOptions,
  ) {
    this.agent = new Agent({ keepAlive: true, ca: readFileSync(opts.ca.caCert) });
  }

  static async start(opts: TamperOptions): Promise<TamperingUpstream> {
    const self: { t?: TamperingUpstream } = {};
    const server = createServer({ cert: readFileSync(opts.ca.cert), key: readFileSync(opts.ca.key) }, (req, res) =>
      self.t!.handle(req, res),
    );
    server.on('connection', (s: Socket) => {
      self.t?.sockets.add(s);
      s.once('close', () => self.t?.sockets.delete(s));
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    self.t = new TamperingUpstream(server, port, opts);
    return self.t;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Serve `digest` broken from now on. */
  break(digest: string, fault: Fault): void {
    this.faults.set(digest, fault);
  }

  /** Serve every digest as the upstream has it. */
  heal(): void {
    this.faults.clear();
  }

  private handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void {
    const digest = BLOB.exec(req.url ?? '')?.[1];
    const fault = digest === undefined ? undefined : this.faults.get(digest);
    if (digest !== undefined && req.method === 'GET') this.blobGets.set(digest, (this.blobGets.get(digest) ?? 0) + 1);
    const headers = { ...req.headers, host: `${this.opts.target.host}:${this.opts.target.port}` };
    const up = request(
      {
        host: this.opts.target.host,
        port: this.opts.target.port,
        method: req.method,
        path: req.url,
        headers,
        agent: this.agent,
      },
      (upRes) => {
        const status = upRes.statusCode ?? 502;
        if (fault === undefined || status !== 200) {
          res.writeHead(status, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const declared = Number(upRes.headers['content-length']);
          const good = Buffer.concat(chunks);
          const out = { ...upRes.headers };
          if (fault === 'truncate') {
            const short = Math.floor(declared / 2);
            out['content-length'] = String(short);
            res.writeHead(200, out);
            res.end(req.method === 'HEAD' ? undefined : good.subarray(0, short));
          } else if (req.method === 'HEAD') {
            res.writeHead(200, out);
            res.end();
          } else if (fault === 'corrupt') {
            const bad = Buffer.from(good);
            bad[bad.length >> 1] ^= 0xff;
            res.writeHead(200, out);
            res.end(bad);
          } else {
            res.writeHead(200, out);
            res.write(good.subarray(0, good.length >> 1), () => res.socket?.destroy());
          }
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
