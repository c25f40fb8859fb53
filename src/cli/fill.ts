/**
 * `mirror-synth fill`: the streaming fill of a cache pod (`spec.fill: streaming`), on the pod's
 * loopback between the front (nginx) and Distribution. Runs until SIGTERM or SIGINT; then stops
 * taking connections and lets the transfers in progress end.
 */
import { pino } from 'pino';

import { UsageError } from '../api/errors.js';
import { FillServer } from '../fill/fill.js';

export interface FillCommandOptions {
  /** host:port to listen on. */
  readonly listen: string;
  /** Distribution's URL. */
  readonly distribution: string;
  /** Spool directory (emptied at start). */
  readonly spool: string;
  readonly logLevel: string;
}

export async function fill(opts: FillCommandOptions): Promise<void> {
  const m = /^(.*):(\d{1,5})$/.exec(opts.listen);
  if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen must be host:port, got '${opts.listen}'`);
  if (!/^http:\/\/[^/]+$/.test(opts.distribution))
    throw new UsageError(`--distribution must be http://host:port, got '${opts.distribution}'`);
  const logger = pino({ level: opts.logLevel, base: { component: 'fill' }, timestamp: pino.stdTimeFunctions.isoTime });
  const server = new FillServer({
    distribution: opts.distribution,
    spoolDir: opts.spool,
    log: (msg, fields) => logger.info(fields ?? {}, msg),
  });
  const port = await server.listen(Number(m[2]), m[1]);
  logger.info({ listen: `${m[1]}:${port}`, distribution: opts.distribution, spool: opts.spool }, 'fill listening');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  logger.info(server.stats(), 'fill stopping');
  await server.close();
}
