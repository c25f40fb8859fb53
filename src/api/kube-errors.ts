/** Helpers to read API errors without ever printing a request or response body wholesale. */

/** The HTTP status of a client-node error, when it has one. */
export function errorStatus(err: unknown): number | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; statusCode?: unknown };
  if (typeof e.code === 'number') return e.code;
  if (typeof e.statusCode === 'number') return e.statusCode;
  return undefined;
}

/**
 * A one-line description of an error that is safe to log: the API's Status message when
 * there is one, else the error's own message, without response headers or bodies.
 */
export function describeError(err: unknown): string {
  if (err === null || typeof err !== 'object') return String(err);
  const e = err as { code?: unknown; body?: unknown; message?: unknown; name?: unknown };
  let body = e.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      body = undefined;
    }
  }
  const statusMessage = (body as { message?: unknown } | undefined)?.message;
  if (typeof statusMessage === 'string') {
    return typeof e.code === 'number' ? `${e.code}: ${statusMessage}` : statusMessage;
  }
  if (typeof e.code === 'number') return `HTTP ${e.code}`;
  const message = typeof e.message === 'string' ? e.message.split('\n')[0] : '';
  const name = typeof e.name === 'string' ? e.name : 'Error';
  return message ? `${name}: ${message}` : name;
}

/** Errors worth retrying: no status (network), 408, 409, 429 and 5xx. Other 4xx need a person. */
export function isTransient(err: unknown): boolean {
  const status = errorStatus(err);
  return status === undefined || status === 408 || status === 409 || status === 429 || status >= 500;
}
