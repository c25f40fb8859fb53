/**
 * Leader election through a coordination.k8s.io/v1 Lease, after client-go's leaderelection:
 * a candidate takes the Lease when it is free or its holder has not renewed it for
 * `leaseDurationSeconds` (measured on the local clock from when this candidate last saw the
 * record change, so clock skew between nodes does not matter), the leader renews it every
 * `retryPeriodSeconds` and gives up leadership when it could not renew for
 * `renewDeadlineSeconds`. Writes use the Lease's resourceVersion, so two candidates cannot
 * both win. On a clean stop the leader releases the Lease so a standby takes over at once.
 *
 * Every request has a deadline, and a renew's requests share the renew deadline: counted from
 * the start of the last renew that succeeded, they fail when it passes, however the connection
 * behaves. So a leader knows it lost the Lease by then at the latest, while a standby waits a
 * whole `leaseDurationSeconds` (longer) after it last saw the record change (no earlier than
 * that renew started): the gap is the leader's time to stop.
 */
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { ClusterError } from '../api/errors.js';
import { describeError, errorStatus } from '../api/kube-errors.js';
import { formatSeconds, withDeadlines } from './deadline.js';
import { attemptTimeoutMs, leaderTimingsProblem } from './timings.js';

export { attemptTimeoutMs, JITTER_FACTOR, leaderTimingsProblem } from './timings.js';

/** The leader could not renew its Lease within the renew deadline: it must stop acting at once. */
export class LeadershipLostError extends ClusterError {
  override readonly name: string = 'LeadershipLostError';
}

export interface LeaseRecord {
  readonly holderIdentity?: string;
  readonly leaseDurationSeconds?: number;
  readonly renewTime?: string | Date;
  readonly acquireTime?: string | Date;
  readonly leaseTransitions?: number;
}

/** When this candidate last saw the Lease record change, on its own clock. */
export interface Observation {
  readonly key: string;
  readonly at: number;
}

/** Identity of a record for change detection: holder and renew time. */
export function recordKey(r: LeaseRecord | undefined): string {
  const t = r?.renewTime instanceof Date ? r.renewTime.toISOString() : (r?.renewTime ?? '');
  return `${r?.holderIdentity ?? ''}|${t}`;
}

/** Update the observation when the record changed since it was last seen. */
export function observe(prev: Observation | undefined, record: LeaseRecord | undefined, now: number): Observation {
  const key = recordKey(record);
  return prev !== undefined && prev.key === key ? prev : { key, at: now };
}

/** Whether `identity` may take or keep the Lease now. */
export function mayAcquire(
  record: LeaseRecord | undefined,
  identity: string,
  observed: Observation,
  now: number,
  defaultDurationSeconds: number,
): boolean {
  const holder = record?.holderIdentity;
  if (!holder || holder === identity) return true;
  const duration = (record.leaseDurationSeconds ?? defaultDurationSeconds) * 1000;
  return observed.at + duration <= now;
}

export interface LeaderElectorOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly leaseName: string;
  readonly identity: string;
  readonly leaseDurationSeconds: number;
  readonly renewDeadlineSeconds: number;
  readonly retryPeriodSeconds: number;
  /** Deadline of one request (a renew's are cut to the renew deadline). */
  readonly requestTimeoutSeconds: number;
  readonly logger: Logger;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly releaseApi: CoordinationV1Api;
  private readonly leaseName: string;
  private readonly duration: number;
  private readonly renewDeadline: number;
  private readonly retryPeriod: number;
  private readonly requestTimeoutMs: number;
  private observed: Observation | undefined;
  private stopped = false;
  private wake: (() => void) | undefined;
  private leading = false;
  /** When the last attempt that took or renewed the Lease started (Date.now()). */
  private renewedAt = 0;
  /** When the requests of the attempt under way must have finished; undefined: the request timeout only. */
  private deadlineAt: number | undefined;

  constructor(private readonly opts: LeaderElectorOptions) {
    this.leaseName = opts.leaseName;
    this.duration = opts.leaseDurationSeconds;
    this.renewDeadline = opts.renewDeadlineSeconds;
    this.retryPeriod = opts.retryPeriodSeconds;
    this.requestTimeoutMs = opts.requestTimeoutSeconds * 1000;
    const problem = leaderTimingsProblem(this.duration, this.renewDeadline, this.retryPeriod);
    if (problem !== undefined) throw new Error(`leader election: ${problem}`);
    this.api = withDeadlines(opts.kubeConfig, {
      timeoutMs: () => attemptTimeoutMs(Date.now(), this.requestTimeoutMs, this.deadlineAt),
    }).makeApiClient(CoordinationV1Api);
    // The release on stop has the request timeout alone: a renew under way must not lend it what
    // is left of its renew deadline.
    this.releaseApi = withDeadlines(opts.kubeConfig, { timeoutMs: this.requestTimeoutMs }).makeApiClient(
      CoordinationV1Api,
    );
  }

  /** Resolves once this candidate holds the Lease; resolves `false` if stopped first. */
  async acquire(): Promise<boolean> {
    let logged = false;
    while (!this.stopped) {
      if (await this.tryAcquireOrRenew()) {
        this.leading = true;
        this.opts.logger.info(
          { lease: `${this.opts.namespace}/${this.leaseName}`, identity: this.opts.identity },
          'became leader',
        );
        return true;
      }
      if (!logged) {
        this.opts.logger.info(
          { lease: `${this.opts.namespace}/${this.leaseName}`, holder: this.observedHolder() },
          'waiting for leadership',
        );
        logged = true;
      }
      await this.sleep(this.retryPeriod * 1000 * (1 + Math.random() * 0.2));
    }
    return false;
  }

  /**
   * Renew the Lease until stopped (resolves) or until it could not be renewed within
   * `renewDeadlineSeconds` of the start of the last renew that succeeded (rejects with a
   * LeadershipLostError: the caller must stop acting as leader at once). Each attempt's requests
   * are cut off at that deadline, so this rejects on time even when a request hangs.
   */
  async hold(): Promise<void> {
    while (!this.stopped) {
      const deadlineAt = this.renewedAt + this.renewDeadline * 1000;
      await this.sleep(Math.min(this.retryPeriod * 1000, Math.max(0, deadlineAt - Date.now())));
      if (this.stopped) break;
      if (Date.now() < deadlineAt) {
        this.deadlineAt = deadlineAt;
        const renewed = await this.tryAcquireOrRenew();
        this.deadlineAt = undefined;
        if (renewed || this.stopped) continue;
      }
      if (Date.now() >= deadlineAt) {
        this.leading = false;
        throw new LeadershipLostError(
          `lost leadership of Lease ${this.opts.namespace}/${this.leaseName}: could not renew it within the renew ` +
            `deadline (${this.renewDeadline}s, last renewed ${formatSeconds(Date.now() - this.renewedAt)} ago)`,
        );
      }
    }
  }

  /** Stop electing; release the Lease if held so another candidate takes over without waiting. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.releaseApi.readNamespacedLease({ name: this.leaseName, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      lease.spec.renewTime = new V1MicroTime();
      await this.releaseApi.replaceNamespacedLease({
        name: this.leaseName,
        namespace: this.opts.namespace,
        body: lease,
      });
      this.opts.logger.info({ lease: `${this.opts.namespace}/${this.leaseName}` }, 'released leadership');
    } catch (err) {
      this.opts.logger.warn(
        { lease: `${this.opts.namespace}/${this.leaseName}`, err: describeError(err) },
        'could not release the Lease',
      );
    }
  }

  private observedHolder(): string {
    return this.observed?.key.split('|')[0] ?? '';
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, identity, logger } = this.opts;
    const startedAt = Date.now();
    const now = new V1MicroTime(startedAt);
    let lease: V1Lease | undefined;
    try {
      lease = await this.api.readNamespacedLease({ name: this.leaseName, namespace });
    } catch (err) {
      if (errorStatus(err) !== 404) {
        logger.warn({ lease: `${namespace}/${this.leaseName}`, err: describeError(err) }, 'could not read the Lease');
        return false;
      }
    }
    try {
      if (lease === undefined) {
        await this.api.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.leaseName, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.duration,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        this.observed = { key: `${identity}|${now.toISOString()}`, at: Date.now() };
        this.renewedAt = startedAt;
        return true;
      }
      const record = (lease.spec ?? {}) as LeaseRecord;
      this.observed = observe(this.observed, record, Date.now());
      if (!mayAcquire(record, identity, this.observed, Date.now(), this.duration)) return false;
      const taking = record.holderIdentity !== identity;
      lease.spec = {
        ...lease.spec,
        holderIdentity: identity,
        leaseDurationSeconds: this.duration,
        renewTime: now,
        acquireTime: taking ? now : lease.spec?.acquireTime ? new V1MicroTime(lease.spec.acquireTime) : now,
        leaseTransitions: (record.leaseTransitions ?? 0) + (taking ? 1 : 0),
      };
      await this.api.replaceNamespacedLease({ name: this.leaseName, namespace, body: lease });
      this.observed = { key: `${identity}|${now.toISOString()}`, at: Date.now() };
      this.renewedAt = startedAt;
      return true;
    } catch (err) {
      // 409: another candidate wrote first. Anything else: try again next period.
      if (errorStatus(err) !== 409) {
        logger.warn({ lease: `${namespace}/${this.leaseName}`, err: describeError(err) }, 'could not write the Lease');
      }
      return false;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wake = undefined;
        resolve();
      }, ms);
      this.wake = () => {
        clearTimeout(t);
        this.wake = undefined;
        resolve();
      };
    });
  }
}
