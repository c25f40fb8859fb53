/**
 * `mirror-synth keeper`: keeps a cache pod's store under its size bound (`spec.cache.maxSize`),
 * evicting the least recently used images (src/keeper/keeper.ts). Runs until SIGTERM or SIGINT.
 */
import { pino } from 'pino';

import { UsageError } from '../api/errors.js';
import { parseBytes } from '../api/quantity.js';
import { startProbeServer } from '../controller/http.js';
import { Keeper } from '../keeper/keeper.js';
import { type BindAddress, parseBindAddress, parseListenAddress } from './options.js';

export interface KeeperCommandOptions {
  /** The cache volume. */
  readonly store: string;
  /** The bound, a size (`15Gi`). */
  readonly maxSize: string;
  /** Distribution's store is in a bucket: the volume holds the front's copy and the spool only. */
  readonly objectStorage?: boolean;
  /** Where the front sends its requests (UDP host:port). @default - none: recency from the files alone */
  readonly logListen?: string;
  /** Where Prometheus scrapes /metrics, `[host]:port`. @default - none */
  readonly metricsListen?: string;
  /** Seconds between scans. */
  readonly interval: number;
  /** Seconds since its last use before an image may be evicted. */
  readonly guard: number;
  /** Seconds between removing a blob's links and its data. */
  readonly grace: number;
  readonly logLevel: string;
}

export async function keeper(opts: KeeperCommandOptions): Promise<void> {
  const maxBytes = parseBytes(opts.maxSize);
  if (maxBytes === undefined || !(maxBytes > 0))
    throw new UsageError(`--max-size must be a size such as 15Gi, got '${opts.maxSize}'`);
  const logListen = opts.logListen === undefined ? undefined : parseListenAddress('--log-listen', opts.logListen);
  const metricsListen: BindAddress | undefined =
    opts.metricsListen === undefined ? undefined : parseBindAddress('--metrics-listen', opts.metricsListen);
  const logger = pino({
    level: opts.logLevel,
    base: { component: 'keeper' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
  const k = new Keeper({
    root: opts.store,
    maxBytes,
    distribution: !opts.objectStorage,
    intervalMs: opts.interval * 1000,
    guardMs: opts.guard * 1000,
    graceMs: opts.grace * 1000,
    log: (msg, fields) => logger.info(fields ?? {}, msg),
  });
  await k.start(logListen ? { host: logListen.host ?? '127.0.0.1', port: logListen.port } : undefined);
  const metrics = metricsListen
    ? await startProbeServer({
        port: metricsListen.port,
        ...(metricsListen.host ? { host: metricsListen.host } : {}),
        registry: k.metrics.registry,
        health: () => undefined,
        readiness: () => undefined,
      })
    : undefined;
  logger.info(
    {
      store: opts.store,
      maxBytes,
      objectStorage: opts.objectStorage === true,
      ...(logListen ? { logListen: logListen.text } : {}),
      ...(metricsListen ? { metricsListen: metricsListen.text } : {}),
    },
    'keeper running',
  );
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info(k.stats(), 'keeper stopping');
  await metrics?.close();
  await k.stop();
}
