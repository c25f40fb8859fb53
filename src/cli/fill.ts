/**
 * `mirror-synth fill`: the streaming fill of a cache pod (`spec.fill: streaming`), on the pod's
 * loopback between the front (nginx) and Distribution. Runs until SIGTERM or SIGINT; then stops
 * taking connections and lets the transfers in progress end.
 */
import { lookup } from 'node:dns/promises';

import { pino } from 'pino';

import { UsageError } from '../api/errors.js';
import { startProbeServer } from '../controller/http.js';
import { FillServer, parseSpoolMinFree, type Peer, type SpoolMinFree } from '../fill/fill.js';
import { parsePeers, srvPeers } from '../fill/peers.js';
import { type BindAddress, parseBindAddress, parseListenAddress } from './options.js';

export interface FillCommandOptions {
  /** host:port to listen on. */
  readonly listen: string;
  /** Distribution's URL. */
  readonly distribution: string;
  /** Spool directory (emptied of the fill's own files at start). */
  readonly spool: string;
  /** Clients fed at once; one more gets 503. */
  readonly maxClients: number;
  /** Digests fetched at once; one more gets 503. */
  readonly maxTransfers: number;
  /** Seconds a client may take nothing before it is cut. */
  readonly clientTimeout: number;
  /** Free space the spool leaves on its filesystem: `10%` or a size. */
  readonly spoolMinFree: string;
  /** This replica's pod name. @default POD_NAME */
  readonly podName?: string;
  /** The replicas, `name=host:port,...`. */
  readonly peers?: string;
  /** The replicas from this DNS SRV name (the headless Service's `http` port). */
  readonly peersSrv?: string;
  /** Where Prometheus scrapes the fill's /metrics, `[host]:port`. @default - none */
  readonly metricsListen?: string;
  readonly logLevel: string;
}

export async function fill(opts: FillCommandOptions): Promise<void> {
  const listen = parseListenAddress('--listen', opts.listen);
  const metricsListen: BindAddress | undefined =
    opts.metricsListen === undefined ? undefined : parseBindAddress('--metrics-listen', opts.metricsListen);
  if (!/^http:\/\/[^/]+$/.test(opts.distribution))
    throw new UsageError(`--distribution must be http://host:port, got '${opts.distribution}'`);
  let spoolMinFree: SpoolMinFree;
  try {
    spoolMinFree = parseSpoolMinFree(opts.spoolMinFree);
  } catch (err) {
    throw new UsageError(`--spool-min-free: ${(err as Error).message}`);
  }
  const logger = pino({ level: opts.logLevel, base: { component: 'fill' }, timestamp: pino.stdTimeFunctions.isoTime });
  const log = (msg: string, fields?: Record<string, unknown>): void => logger.info(fields ?? {}, msg);
  if (opts.peers !== undefined && opts.peersSrv !== undefined)
    throw new UsageError('give --peers or --peers-srv, not both');
  const self = opts.podName ?? process.env.POD_NAME;
  let peers: (() => readonly Peer[]) | undefined;
  let stopPeers = (): void => undefined;
  if (opts.peers !== undefined || opts.peersSrv !== undefined) {
    if (!self) throw new UsageError("--peers and --peers-srv need this replica's pod name: --pod-name or POD_NAME");
    if (opts.peers !== undefined) {
      let list: Peer[];
      try {
        list = parsePeers(opts.peers);
      } catch (err) {
        throw new UsageError(`--peers: ${(err as Error).message}`);
      }
      if (!list.some((p) => p.name === self)) throw new UsageError(`--peers does not name this replica, '${self}'`);
      // a replica named by its host name: its addresses, once (the peer header is honoured from them)
      const resolved = await Promise.all(
        list.map(async (p) => {
          if (p.ips) return p;
          const host = p.address.slice(0, p.address.lastIndexOf(':'));
          const found = await lookup(host, { all: true }).catch(() => []);
          return { ...p, ips: found.map((a) => a.address) };
        }),
      );
      peers = () => resolved;
    } else {
      if (!/^(.+)-(0|[1-9][0-9]*)$/.test(self))
        throw new UsageError(
          `--peers-srv needs this replica's pod name as a StatefulSet names it, <name>-<ordinal>: got '${self}'`,
        );
      const srv = srvPeers(opts.peersSrv!, { name: self, address: opts.listen }, { log });
      peers = srv.current;
      stopPeers = srv.stop;
    }
  }
  const server = new FillServer({
    distribution: opts.distribution,
    spoolDir: opts.spool,
    maxClients: opts.maxClients,
    maxTransfers: opts.maxTransfers,
    clientTimeoutMs: opts.clientTimeout * 1000,
    spoolMinFree,
    ...(self ? { self } : {}),
    ...(peers ? { peers } : {}),
    log,
  });
  await server.listen(listen.port, listen.host);
  const metrics = metricsListen
    ? await startProbeServer({
        port: metricsListen.port,
        ...(metricsListen.host ? { host: metricsListen.host } : {}),
        registry: server.registry,
        health: () => undefined,
        readiness: () => undefined,
      })
    : undefined;
  logger.info(
    {
      listen: listen.text,
      distribution: opts.distribution,
      spool: opts.spool,
      maxClients: opts.maxClients,
      maxTransfers: opts.maxTransfers,
      clientTimeout: opts.clientTimeout,
      spoolMinFree: opts.spoolMinFree,
      ...(metricsListen ? { metricsListen: metricsListen.text } : {}),
    },
    'fill listening',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info(server.stats(), 'fill stopping');
  stopPeers();
  await metrics?.close();
  await server.close();
}
