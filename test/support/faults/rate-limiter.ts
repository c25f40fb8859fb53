// An upstream registry that rate-limits on demand: a TLS proxy on loopback in front of a test
// upstream (its certificate, which names 127.0.0.1, so a mirror trusting the upstream's CA trusts
// it), passing every request through until `limited` is set, then answering as Docker Hub does
// past its pull limit: a manifest GET gets 429 Too Many Requests with a TOOMANYREQUESTS error body;
// HEADs (which Docker Hub does not count) and blobs (served from its CDN) pass. (Distribution asks
// an upstream for a tag with a HEAD, and keeps quiet about a failed one: it answers from its own
// storage, or 404; its manifest GET by digest is what gets the 429, which it relays.)
import { readFile } from 'node:fs/promises';
import { createServer, request, type Server } from 'node:https';
import type { Socket } from 'node:net';

import type { TestCA } from '../primitives/tls.js';

export class RateLimitingProxy {
  /** Answer every request 429 while set. */
  limited = false;
  /** Requests answered 429. */
  refused = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(opts: { target: { host: string; port: number }; ca: TestCA }): Promise<RateLimitingProxy> {
    const [cert, key, ca] = await Promise.all([
      readFile(opts.ca.cert),
      readFile(opts.ca.key),
      readFile(opts.ca.caCert),
    ]);
    const self: { proxy?: RateLimitingProxy } = {};
    const server = createServer({ cert, key }, (req, res) => {
      const proxy = self.proxy!;
      if (proxy.limited && req.method === 'GET' && /\/manifests\//.test(req.url ?? '')) {
        proxy.refused++;
        const body = JSON.stringify({
          errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }],
        });
        res.writeHead(429, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
        req.resume();
        return;
      }
      const up = request(
        {
          host: opts.target.host,
          port: opts.target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          ca,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
    self.proxy = new RateLimitingProxy(server, port);
    return self.proxy;
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
