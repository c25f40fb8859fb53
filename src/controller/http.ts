/** /healthz, /readyz and Prometheus /metrics on one small HTTP server. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import type { Registry } from 'prom-client';

export interface ProbeServerOptions {
  readonly port: number;
  /** @default '0.0.0.0' */
  readonly host?: string;
  readonly registry: Registry;
  /** `undefined` when healthy, else why not. */
  readonly health: () => string | undefined;
  readonly readiness: () => string | undefined;
}

export interface ProbeServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startProbeServer(opts: ProbeServerOptions): Promise<ProbeServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const probe = (problem: string | undefined): void => {
      res.writeHead(problem === undefined ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(problem === undefined ? 'ok\n' : `${problem}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
    } else if (path === '/healthz' || path === '/livez') {
      probe(opts.health());
    } else if (path === '/readyz') {
      probe(opts.readiness());
    } else if (path === '/metrics') {
      opts.registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': opts.registry.contentType });
          res.end(body);
        })
        .catch(() => res.writeHead(500).end());
    } else {
      res.writeHead(404).end();
    }
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Where the controller serves /metrics and the probes (ControllerConfig's fields). */
export interface ServerAddresses {
  readonly metricsPort: number | undefined;
  readonly metricsHost: string | undefined;
  readonly probePort: number | undefined;
  readonly probeHost: string | undefined;
}

/**
 * The metrics server, and a probe server when the probes are set apart from it (or there is no
 * metrics server); none started when one fails.
 */
export async function startServers(
  opts: ServerAddresses,
  handlers: Omit<ProbeServerOptions, 'port' | 'host'>,
): Promise<{ servers: ProbeServer[]; metricsServer?: ProbeServer; probeServer?: ProbeServer }> {
  const servers: ProbeServer[] = [];
  let metricsServer: ProbeServer | undefined;
  let probeServer: ProbeServer | undefined;
  try {
    if (opts.metricsPort !== undefined) {
      metricsServer = await startProbeServer({
        port: opts.metricsPort,
        ...(opts.metricsHost ? { host: opts.metricsHost } : {}),
        ...handlers,
      });
      servers.push(metricsServer);
    }
    const separateProbes =
      opts.probePort !== undefined &&
      (opts.probePort !== opts.metricsPort || (opts.probeHost ?? '') !== (opts.metricsHost ?? ''));
    if (separateProbes || (opts.probePort !== undefined && metricsServer === undefined)) {
      probeServer = await startProbeServer({
        port: opts.probePort,
        ...(opts.probeHost ? { host: opts.probeHost } : {}),
        ...handlers,
      });
      servers.push(probeServer);
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.close()));
    throw err;
  }
  return { servers, ...(metricsServer ? { metricsServer } : {}), ...(probeServer ? { probeServer } : {}) };
}
