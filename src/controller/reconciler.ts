/**
 * Reconcile one RegistryMirror, a short pipeline over what the caches hold of it:
 *
 *   read (read.ts)  →  arbitrate (arbitrate.ts)  →  desire (desire.ts)  →  takeover (takeover.ts)
 *   →  apply and prune (apply.ts)  →  serving (serving.ts)  →  report: status and events (report.ts)
 *
 * Each stage hands the next what it needs, or ends the reconcile with an outcome; the report
 * stage writes status once.
 */
import type { Logger } from 'pino';

import { describeError, errorStatus } from '../api/kube-errors.js';
import type { KubeObject } from '../api/kube-object.js';
import { MIRROR_LABEL } from '../api/names.js';
import type { LivePolicy } from '../api/policy.js';
import { ChildApplier } from './apply.js';
import { arbitrate } from './arbitrate.js';
import type { Cache, ChildIndex } from './caches.js';
import { desiredChildren, type DesireOptions } from './desire.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import type { LiveMeta } from './plan.js';
import { readSpec } from './read.js';
import { servingMessage } from './readiness.js';
import { StatusReporter } from './report.js';
import { waitingFor, workloads } from './serving.js';
import { isOutcome, type ReconcileOutcome } from './status.js';
import { Takeover, TAKEOVER_FORBIDDEN, type TakeoverStep } from './takeover.js';

/** What the worker should do with a key after a reconcile. */
export type Requeue = 'none' | 'backoff' | { readonly afterMs: number };

/** How often a mirror whose pods are not ready yet is looked at again without an event (a crash loop changes no workload status). */
export const WAITING_RECHECK_MS = 30_000;

export interface ReconcilerOptions extends DesireOptions {
  readonly client: KubeClient;
  /**
   * What mirrors may name, as it is now (the allowlist ConfigMap changes while the controller
   * runs); one it refuses stalls with NotAllowed, one a broken list governs with InvalidAllowlist.
   * @default - anything
   */
  readonly policy?: () => LivePolicy;
  /** Take mirrors over from the original mirror-operator. @default false */
  readonly takeover?: boolean;
  readonly mirrors: Cache<RegistryMirrorObject>;
  readonly children: ChildIndex;
  /** Kinds that have an informer; others are read with a GET before deciding to apply. */
  readonly watchedKinds: ReadonlySet<string>;
  readonly logger: Logger;
  readonly metrics: ControllerMetrics;
  readonly now?: () => Date;
}

/** One reconcile of one mirror: what every stage is given. */
interface ReconcileContext {
  readonly name: string;
  readonly mirror: RegistryMirrorObject;
  readonly log: Logger;
}

/** The metric label of an outcome. */
function resultOf(outcome: ReconcileOutcome): string {
  if (outcome.type === 'Applied') return outcome.waiting ? 'waiting' : 'success';
  return outcome.type === 'Stalled' ? 'stalled' : 'retry';
}

/** What the worker does next with a mirror after this outcome. */
function requeueOf(outcome: ReconcileOutcome): Requeue {
  if (outcome.type === 'Retrying') return 'backoff';
  if (outcome.type === 'Applied' && outcome.waiting) return { afterMs: outcome.recheckMs ?? WAITING_RECHECK_MS };
  return 'none';
}

export class Reconciler {
  readonly takeover: Takeover;
  private readonly applier: ChildApplier;
  private readonly reporter: StatusReporter;

  constructor(private readonly opts: ReconcilerOptions) {
    const { client, namespace, logger, metrics } = opts;
    this.takeover = new Takeover({ client, namespace, logger, enabled: opts.takeover ?? false });
    this.applier = new ChildApplier({ ...opts, takeover: this.takeover });
    this.reporter = new StatusReporter({ client, metrics, now: opts.now ?? (() => new Date()) });
  }

  /** Whether a child event is only the echo of the controller's own apply (nothing to do). */
  isOwnWrite(child: LiveMeta): boolean {
    return this.applier.isOwnWrite(child);
  }

  async reconcile(name: string): Promise<Requeue> {
    const { metrics } = this.opts;
    const log = this.opts.logger.child({ mirror: name });
    const end = metrics.reconcileDuration.startTimer();
    try {
      const mirror = this.opts.mirrors.get(name);
      if (!mirror) {
        await this.applier.pruneOrphans(name, log);
        this.reporter.forget(name);
        metrics.reconcileTotal.inc({ result: 'deleted' });
        log.debug({ result: 'deleted' }, 'reconciled');
        return 'none';
      }
      if (mirror.metadata?.deletionTimestamp) return 'none'; // the garbage collector removes the children
      const ctx = { name, mirror, log };
      // The label is independent of the children: written while they are applied.
      const labelled = this.ensureLabel(ctx);
      const outcome = await this.converge(ctx);
      await labelled;
      await this.reporter.report(mirror, outcome, log);
      const result = resultOf(outcome);
      metrics.reconcileTotal.inc({ result });
      log.debug({ result }, 'reconciled');
      return requeueOf(outcome);
    } finally {
      end();
    }
  }

  /** `mirror=<name>` on the RegistryMirror itself, so the original operator's `kubectl get -l mirror=<name>` lists it. */
  private async ensureLabel({ name, mirror, log }: ReconcileContext): Promise<void> {
    if (mirror.metadata?.labels?.[MIRROR_LABEL] === name) return;
    try {
      await this.opts.client.labelMirror(name);
    } catch (err) {
      // A label someone else owns with another value: leave it, say so, and carry on.
      this.opts.metrics.errorsTotal.inc({ type: 'label' });
      log.warn({ err: describeError(err) }, `could not set the label ${MIRROR_LABEL}=${name} on the RegistryMirror`);
    }
  }

  /** The pipeline, up to the report: the outcome of this reconcile. */
  private async converge(ctx: ReconcileContext): Promise<ReconcileOutcome> {
    const input = readSpec(ctx.mirror, this.opts);
    if (isOutcome(input)) return input;
    const lost = arbitrate(ctx.name, this.opts.mirrors.list());
    if (lost) return lost;
    const all = await desiredChildren(this.opts, ctx.mirror, input);
    if (isOutcome(all)) return all;
    const live = await this.liveChildren(ctx.name, all);
    // Taking over the original operator's objects holds some children back until it is safe.
    const step = await this.takeoverStep(ctx, all, live);
    if (isOutcome(step)) return step;
    if (step.outcome) return step.outcome;
    const plan = this.applier.plan(ctx.name, step.desired, live);
    const failed = await this.applier.converge(ctx.mirror, plan, live, ctx.log);
    if (failed) return failed;
    const applied = {
      type: 'Applied' as const,
      applied: plan.apply.length,
      unchanged: plan.unchanged.length,
      pruned: plan.prune.length,
      namespace: this.opts.namespace,
    };
    const known = { ...this.opts, appliedGeneration: (m: string, k: string) => this.applier.appliedGeneration(m, k) };
    const waiting = step.waiting ?? (await waitingFor(known, ctx.name, all, ctx.log));
    if (waiting) return { ...applied, waiting, ...(step.recheckMs ? { recheckMs: step.recheckMs } : {}) };
    const [cache, agent] = workloads(known, ctx.name, all);
    return { ...applied, serving: servingMessage(cache, agent) };
  }

  /**
   * The mirror's live children from the caches. Kinds without an informer (none today: every
   * child kind is watched) are read, so the content-hash check still applies.
   */
  private async liveChildren(name: string, desired: readonly KubeObject[]): Promise<LiveMeta[]> {
    const live = [...this.opts.children.of(name)];
    for (const d of desired) {
      if (this.opts.watchedKinds.has(d.kind)) continue;
      const obj = await this.opts.client.read(d);
      if (obj) live.push(obj as LiveMeta);
    }
    return live;
  }

  /** The takeover's step, or TakeoverForbidden when the controller's RBAC does not allow it. */
  private async takeoverStep(
    { mirror, log }: ReconcileContext,
    all: KubeObject[],
    live: readonly LiveMeta[],
  ): Promise<TakeoverStep | ReconcileOutcome> {
    try {
      return await this.takeover.step(mirror, all, live, log);
    } catch (err) {
      if (errorStatus(err) !== 403) throw err;
      return {
        type: 'Stalled',
        reason: TAKEOVER_FORBIDDEN,
        message:
          `Taking over from mirror-operator needs to delete its pods and claims in namespace ${this.opts.namespace}, and the controller may not (${describeError(err)}). ` +
          'Apply `mirror-synth controller-manifests --takeover`, which grants pod and persistentvolumeclaim delete with --takeover; the takeover resumes where it stopped.',
      };
    }
  }
}
