// HTTP/1.1 written by hand on one TCP connection, for tests of what a server does with bytes no
// well-behaved client sends: a body on a method that has none, requests pipelined behind it.
import { connect } from 'node:net';

export interface RawExchange {
  /** Everything the server sent (latin1). */
  readonly text: string;
  /** The server closed the connection (else the wait ran out and the test closed it). */
  readonly closed: boolean;
  /** The status line of each answer, in order. */
  readonly statuses: readonly number[];
}

/**
 * Writes `raw` on one connection to 127.0.0.1:`port` (from `localAddress` when given) and
 * resolves what came back when the server closes the connection, or after `waitMs`.
 */
export function exchangeRaw(
  port: number,
  raw: string,
  opts: { waitMs?: number; localAddress?: string } = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const socket = connect({
      port,
      host: '127.0.0.1',
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    let text = '';
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed, statuses: [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])) });
    };
    const timer = setTimeout(() => done(false), opts.waitMs ?? 2000);
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => done(true));
    socket.write(raw);
  });
}
