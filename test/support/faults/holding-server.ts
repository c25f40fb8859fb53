// A loopback HTTP server that the tests let hang: its handler may answer, or keep the response
// open (`hold`), as a black-holed or stalled API server (or Distribution) would; and a KubeConfig
// that points at it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import { KubeConfig } from '@kubernetes/client-node';

export interface HoldingServer {
  /** A KubeConfig for the server (plain HTTP, no user). */
  readonly kc: KubeConfig;
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Connections open to it now. */
  connections(): Promise<number>;
  /** Ends every held response and closes the server. */
  close(): Promise<void>;
}

/** `handle` answers a request, or calls `hold(res)` to keep it open until close(). */
export async function startHoldingServer(
  handle: (req: IncomingMessage, res: ServerResponse, hold: (res: ServerResponse) => void) => void,
): Promise<HoldingServer> {
  const held: ServerResponse[] = [];
  const server: Server = createServer((req, res) => handle(req, res, (r) => held.push(r)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      // plain HTTP on loopback: client-node allows it only with skipTLSVerify
      { name: 'c', server: url, skipTLSVerify: true },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return {
    kc,
    url,
    connections: () =>
      new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n)))),
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
