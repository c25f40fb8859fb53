/**
 * A deadline on every API request. client-node's generated clients send with no timeout at
 * all: a connection that is black-holed (a dead load balancer, a dropped conntrack entry)
 * hangs the call for good. `withDeadlines` wraps a KubeConfig so that every API client made
 * from it (`makeApiClient`, and `KubernetesObjectApi.makeApiClient`, which calls it) sends
 * each request with an AbortSignal that fires after the request timeout, reads the response
 * body within the same deadline, and turns the abort into an error that names the call.
 *
 * An optional `fence` signal aborts every request at once, in flight or not yet sent: the
 * controller aborts it when it loses its Lease, so no write of a former leader can go out.
 */
import {
  createConfiguration,
  type HttpLibrary,
  IsomorphicFetchHttpLibrary,
  type KubeConfig,
  type RequestContext,
  ResponseContext,
  ServerConfiguration,
  wrapHttpLibrary,
} from '@kubernetes/client-node';

/** Default deadline of one API request, in seconds. */
export const DEFAULT_REQUEST_TIMEOUT_SECONDS = 30;

/** An API request got no (whole) answer within its deadline. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  constructor(
    /** Method and path, such as `GET /api/v1/namespaces/kube-extra`. */
    readonly call: string,
    readonly timeoutMs: number,
  ) {
    super(`${call}: no answer within ${formatSeconds(timeoutMs)}`);
  }
}

/** An API request was not sent, or was cut off, because its fence signal fired (the Lease was lost). */
export class RequestFencedError extends Error {
  override readonly name = 'RequestFencedError';
  constructor(
    readonly call: string,
    reason: string,
  ) {
    super(`${call}: aborted: ${reason}`);
  }
}

export function formatSeconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`;
}

export interface DeadlineOptions {
  /**
   * Deadline of each request in milliseconds, read when the request is sent (a function for
   * deadlines that shrink, such as a Lease renew within its renew deadline). A value of 0 or
   * less fails the request at once, without sending it.
   */
  readonly timeoutMs: number | (() => number);
  /** Aborts every request made through this config, now and later. */
  readonly fence?: AbortSignal;
}

/** `METHOD /path` of a request, without its query (which may be long, and says nothing new). */
function callOf(request: RequestContext): string {
  let path = request.getUrl();
  try {
    path = new URL(path).pathname;
  } catch {
    // keep the URL as is
  }
  return `${String(request.getHttpMethod())} ${path}`;
}

function reasonOf(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'aborted';
}

/** An HttpLibrary that sends each request with a deadline (and the fence), body included. */
export function deadlineHttpLibrary(opts: DeadlineOptions): HttpLibrary {
  const inner = new IsomorphicFetchHttpLibrary();
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const call = callOf(request);
      const ms = typeof opts.timeoutMs === 'function' ? opts.timeoutMs() : opts.timeoutMs;
      if (opts.fence?.aborted) throw new RequestFencedError(call, reasonOf(opts.fence));
      if (ms <= 0) throw new RequestTimeoutError(call, 0);
      // One AbortController per request, fed by a timer and by the fence through a listener
      // removed when the request ends. (AbortSignal.any on the process-long fence would keep a
      // reference per request in Node 20: a leak in a controller that runs for months.)
      const abort = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        abort.abort(new RequestTimeoutError(call, ms));
      }, ms);
      timer.unref();
      const onFence = (): void => abort.abort(opts.fence?.reason);
      opts.fence?.addEventListener('abort', onFence, { once: true });
      request.setSignal(abort.signal);
      try {
        const res = await inner.send(request).toPromise();
        // Read the body here, under the same signal: a response whose body stalls is a hung call too.
        const body = await res.body.binary();
        return new ResponseContext(res.httpStatusCode, res.headers, {
          text: () => Promise.resolve(body.toString('utf8')),
          binary: () => Promise.resolve(body),
        });
      } catch (err) {
        if (opts.fence?.aborted) throw new RequestFencedError(call, reasonOf(opts.fence));
        if (timedOut) throw new RequestTimeoutError(call, ms);
        throw err;
      } finally {
        clearTimeout(timer);
        opts.fence?.removeEventListener('abort', onFence);
      }
    },
  });
}

/**
 * `kc` with a deadline on every request of the API clients made from it. Everything else
 * (watches, auth, the current context) is `kc`'s own.
 */
export function withDeadlines(kc: KubeConfig, opts: DeadlineOptions): KubeConfig {
  const httpApi = deadlineHttpLibrary(opts);
  return new Proxy(kc, {
    get(target, prop, receiver) {
      if (prop === 'makeApiClient') {
        // As KubeConfig.makeApiClient, with our HttpLibrary.
        return <T>(apiClientType: new (config: ReturnType<typeof createConfiguration>) => T): T => {
          const cluster = target.getCurrentCluster();
          if (!cluster) throw new Error('No active cluster!');
          return new apiClientType(
            createConfiguration({
              baseServer: new ServerConfiguration(cluster.server, {}),
              authMethods: { default: target },
              httpApi,
            }),
          );
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
