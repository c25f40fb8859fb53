/** The controller's logger: structured JSON, one event per line, secrets masked. */
import { type DestinationStream, type Logger, pino } from 'pino';

import { CONTROLLER_NAME } from '../construct/platform.js';

export function createLogger(opts: { level?: string; destination?: DestinationStream }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { component: CONTROLLER_NAME },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // Defence in depth: no code path logs these, and if one ever did they would be masked.
      redact: {
        paths: ['data', '*.data', 'stringData', '*.stringData', 'password', '*.password', 'auth', '*.auth'],
        censor: '[redacted]',
      },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
