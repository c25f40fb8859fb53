/**
 * A deadline on every API request. client-node's generated clients send with no timeout at
 * all: a connection that is black-holed (a dead load balancer, a dropped conntrack entry)
 * hangs the call for good. `withDeadlines` wraps a KubeConfig so that every API client made
 * from it (`makeApiClient`, and `KubernetesObjectApi.makeApiClient`, which calls it) sends
 * each request with an AbortSignal that fires after the request timeout, reads the response
 * body within the same deadline, and turns the abort into an error that names the call.
 *
 * An optional `fence` (a RequestFence) aborts every request at once, in flight or not yet sent:
 * the controller aborts it when it loses its Lease, so no write of a former leader can go out.
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

/**
 * Aborts every request sent through it at once, and refuses later ones. It holds the
 * AbortController of each request in flight and aborts them itself, so no request adds a
 * listener to a signal that outlives it: one `abort` listener per request on a process-long
 * AbortSignal made Node warn (MaxListenersExceededWarning) past ten requests in flight (four
 * workers each applying two children of a kind while labelling the mirror reach that). What it
 * holds is exactly the requests in flight (`inFlight`), each released when it ends, however it
 * ends.
 */
export class RequestFence {
  private readonly requests = new Set<AbortController>();
  private fired: { readonly reason: unknown } | undefined;

  get aborted(): boolean {
    return this.fired !== undefined;
  }

  /** What `abort` was given (undefined until then). */
  get reason(): unknown {
    return this.fired?.reason;
  }

  /** Requests sent through the fence that have not ended yet. */
  get inFlight(): number {
    return this.requests.size;
  }

  /** Abort every request in flight, and every later one before it is sent. Once; later calls do nothing. */
  abort(reason: unknown = new Error('fenced')): void {
    if (this.fired) return;
    this.fired = { reason };
    const requests = [...this.requests];
    this.requests.clear();
    for (const request of requests) request.abort(reason);
  }

  /**
   * Hold `request` until the returned release is called (when the request ends): `abort` aborts
   * it meanwhile. A request entered after `abort` is aborted at once.
   */
  enter(request: AbortController): () => void {
    if (this.fired) {
      request.abort(this.fired.reason);
      return () => undefined;
    }
    this.requests.add(request);
    return () => {
      this.requests.delete(request);
    };
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
  readonly fence?: RequestFence;
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

function reasonOf(r: unknown): string {
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'aborted';
}

/** An HttpLibrary that sends each request with a deadline (and the fence), body included. */
export function deadlineHttpLibrary(opts: DeadlineOptions): HttpLibrary {
  const inner = new IsomorphicFetchHttpLibrary();
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const call = callOf(request);
      const ms = typeof opts.timeoutMs === 'function' ? opts.timeoutMs() : opts.timeoutMs;
      if (opts.fence?.aborted) throw new RequestFencedError(call, reasonOf(opts.fence.reason));
      if (ms <= 0) throw new RequestTimeoutError(call, 0);
      // One AbortController per request, fed by a timer and held by the fence until the request
      // ends. (No listener on anything longer-lived than the request; AbortSignal.any on a
      // process-long signal would also keep a reference per request in Node 20.)
      const abort = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        abort.abort(new RequestTimeoutError(call, ms));
      }, ms);
      timer.unref();
      const release = opts.fence?.enter(abort);
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
        if (opts.fence?.aborted) throw new RequestFencedError(call, reasonOf(opts.fence.reason));
        if (timedOut) throw new RequestTimeoutError(call, ms);
        throw err;
      } finally {
        clearTimeout(timer);
        release?.();
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
