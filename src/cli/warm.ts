/**
 * `mirror-synth warm`: the pinned images of a cache pod (`spec.cache.pinned`), fetched through the
 * pod's own front as soon as it starts, whenever the list file changes (the kubelet rewrites a
 * mounted ConfigMap in place: no restart) and at every refresh interval. Serves /metrics and
 * /status (JSON) on one port. Runs until SIGTERM or SIGINT.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';

import { pino } from 'pino';

import { UsageError } from '../api/errors.js';
import { parseInterval, parsePinnedList, type PinnedList, Warmer } from '../warm/warm.js';
import { type BindAddress, parseBindAddress } from './options.js';

export interface WarmCommandOptions {
  /** The list file: `{"images": [...], "refreshInterval": "1h"}`. */
  readonly pinned: string;
  /** The pod's front. */
  readonly registry: string;
  /** Where the pinned digests go. */
  readonly pinnedDigests: string;
  /** When the list file names none. */
  readonly refreshInterval: string;
  /** Seconds between reads of the list file. */
  readonly pollSeconds: number;
  /** `[host]:port` of /metrics and /status. @default - none */
  readonly listen?: string;
  readonly logLevel: string;
}

export async function warm(opts: WarmCommandOptions): Promise<void> {
  if (!/^http:\/\/[^/]+$/.test(opts.registry))
    throw new UsageError(`--registry must be http://host:port, got '${opts.registry}'`);
  let defaultInterval: number;
  try {
    defaultInterval = parseInterval(opts.refreshInterval);
  } catch (err) {
    throw new UsageError(`--refresh-interval must be ${(err as Error).message}`);
  }
  const listen: BindAddress | undefined =
    opts.listen === undefined ? undefined : parseBindAddress('--listen', opts.listen);
  const logger = pino({ level: opts.logLevel, base: { component: 'warm' }, timestamp: pino.stdTimeFunctions.isoTime });
  const log = (msg: string, fields?: Record<string, unknown>): void => logger.info(fields ?? {}, msg);
  const warmer = new Warmer({ registry: opts.registry, pinnedFile: opts.pinnedDigests, log });
  await warmer.loadPrevious();

  const server = listen
    ? createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (req.method !== 'GET' && req.method !== 'HEAD') res.writeHead(405).end();
        else if (path === '/metrics')
          warmer.registry
            .metrics()
            .then((body) => res.writeHead(200, { 'content-type': warmer.registry.contentType }).end(body))
            .catch(() => res.writeHead(500).end());
        else if (path === '/status')
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(`${JSON.stringify({ images: warmer.status() })}\n`);
        else if (path === '/healthz') res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        else res.writeHead(404).end();
      })
    : undefined;
  if (server && listen) {
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(listen.port, listen.host ?? '0.0.0.0', () => resolve());
    });
  }

  const stop = new AbortController();
  let list: PinnedList | undefined;
  let listText: string | undefined;
  let due = true; // a round at start
  let next = 0;
  let wake: (() => void) | undefined;
  const readList = async (): Promise<void> => {
    const text = await readFile(opts.pinned, 'utf8').catch((err: Error) => {
      if (listText !== '') log('pinned list unreadable', { file: opts.pinned, error: err.message });
      listText = '';
      return undefined;
    });
    if (text === undefined || text === listText) return;
    listText = text;
    try {
      list = parsePinnedList(text);
    } catch (err) {
      logger.warn({ file: opts.pinned, error: (err as Error).message }, 'pinned list refused, the last one kept');
      return;
    }
    warmer.setImages(list.images);
    log('pinned list read', { images: list.images, refreshInterval: list.refreshInterval ?? opts.refreshInterval });
    due = true;
    wake?.();
  };
  const interval = (): number => {
    try {
      return list?.refreshInterval ? parseInterval(list.refreshInterval) : defaultInterval;
    } catch {
      return defaultInterval;
    }
  };
  await readList();
  const poll = setInterval(() => void readList(), opts.pollSeconds * 1000);
  process.once('SIGTERM', () => stop.abort());
  process.once('SIGINT', () => stop.abort());
  logger.info(
    {
      pinned: opts.pinned,
      registry: opts.registry,
      pinnedDigests: opts.pinnedDigests,
      ...(listen ? { listen: listen.text } : {}),
    },
    'warm running',
  );

  while (!stop.signal.aborted) {
    if (due || Date.now() >= next) {
      due = false;
      next = Date.now() + interval();
      const status = await warmer.round(stop.signal);
      log('pinned round done', {
        warm: status.filter((s) => s.warm).length,
        images: status.length,
        nextInSeconds: Math.round(interval() / 1000),
      });
      continue;
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, Math.max(0, next - Date.now()));
      wake = () => {
        clearTimeout(t);
        resolve();
      };
      stop.signal.addEventListener('abort', wake, { once: true });
    });
    wake = undefined;
  }
  clearInterval(poll);
  log('warm stopping');
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
