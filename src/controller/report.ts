/**
 * The report stage of a reconcile: write the mirror's status once, when it changed, set the
 * condition metrics, and record an Event for a change people should see.
 */
import type { Logger } from 'pino';

import { describeError, errorStatus } from '../api/kube-errors.js';
import { mirrorName } from '../api/kube-object.js';
import type { MirrorStatus } from '../api/schema.js';
import { canonicalJson } from './hash.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import { CONDITION_TYPES, eventFor, nextStatus, type ReconcileOutcome, statusChanged } from './status.js';

interface StatusMemo {
  readonly uid: string;
  /** Canonical JSON of the status the cache showed before the write. */
  readonly before: string;
  readonly written: MirrorStatus;
  readonly resourceVersion: string | undefined;
}

export interface ReporterOptions {
  readonly client: KubeClient;
  readonly metrics: ControllerMetrics;
  readonly now: () => Date;
}

export class StatusReporter {
  private readonly statusMemo = new Map<string, StatusMemo>();

  constructor(private readonly opts: ReporterOptions) {}

  /** Forget a mirror that is gone: its memo and its condition metrics. */
  forget(name: string): void {
    this.statusMemo.delete(name);
    for (const condition of CONDITION_TYPES) this.opts.metrics.mirrorCondition.remove({ mirror: name, condition });
  }

  /** The status the controller should compare against: the cache's, unless the cache has not caught up with our last write. */
  private previousStatus(mirror: RegistryMirrorObject): MirrorStatus | undefined {
    const cached = mirror.status;
    const memo = this.statusMemo.get(mirrorName(mirror));
    if (!memo || memo.uid !== mirror.metadata?.uid) return cached;
    if (memo.resourceVersion === mirror.metadata?.resourceVersion) return cached;
    return canonicalJson(cached ?? null) === memo.before ? memo.written : cached;
  }

  async report(mirror: RegistryMirrorObject, outcome: ReconcileOutcome, log: Logger): Promise<void> {
    const name = mirrorName(mirror);
    const generation = mirror.metadata?.generation ?? 0;
    const previous = this.previousStatus(mirror);
    const status = nextStatus(previous, outcome, generation, this.opts.now());
    for (const c of status.conditions ?? []) {
      this.opts.metrics.mirrorCondition.set({ mirror: name, condition: c.type }, c.status === 'True' ? 1 : 0);
    }
    if (outcome.type !== 'Applied') {
      log.warn(
        { reason: outcome.reason, message: outcome.message },
        outcome.type === 'Stalled' ? 'stalled' : 'will retry',
      );
    }
    if (statusChanged(previous, status)) {
      try {
        const rv = await this.opts.client.writeMirrorStatus(name, status);
        this.statusMemo.set(name, {
          uid: mirror.metadata?.uid ?? '',
          before: canonicalJson(mirror.status ?? null),
          written: status,
          resourceVersion: rv,
        });
      } catch (err) {
        this.opts.metrics.errorsTotal.inc({ type: 'status' });
        // Deleted meanwhile: nothing to report on.
        if (errorStatus(err) === 404) return;
        throw err;
      }
    }
    const event = eventFor(previous, outcome);
    if (event) {
      // Events are for people: recorded without holding the worker up.
      this.opts.client.recordEvent(mirror, event).catch((err: unknown) => {
        this.opts.metrics.errorsTotal.inc({ type: 'event' });
        log.warn({ err: describeError(err) }, 'could not record an Event');
      });
    }
  }
}
