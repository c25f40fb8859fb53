/**
 * The apply stage of a reconcile: server-side apply what changed, kinds in order, then prune what
 * the mirror no longer asks for. Remembers what it applied, so the echo of its own write is known
 * (isOwnWrite) and a child whose content hash is unchanged is not written again.
 */
import type { Logger } from 'pino';

import { describeError, errorStatus, isTransient } from '../api/kube-errors.js';
import { type KubeObject, mirrorName } from '../api/kube-object.js';
import { CONTENT_HASH_ANNOTATION } from '../api/names.js';
import { takenByAnotherMirror } from './arbitrate.js';
import { type Cache, ChildIndex } from './caches.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import type { ControllerMetrics } from './metrics.js';
import { type AppliedRecord, childKey, GENERATION_KINDS, type LiveMeta, type Plan, planChildren } from './plan.js';
import type { ReconcileOutcome } from './status.js';
import type { Takeover } from './takeover.js';

export interface ApplierOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly metrics: ControllerMetrics;
  readonly children: ChildIndex;
  readonly mirrors: Cache<RegistryMirrorObject>;
  /** Asked about an object in the way of a child (409): it may be the original mirror-operator's. */
  readonly takeover: Takeover;
}

/** Objects grouped by kind, the groups in apply order (as sortForApply orders them). */
function byKind(objs: readonly KubeObject[]): KubeObject[][] {
  const groups: KubeObject[][] = [];
  for (const o of objs) {
    const last = groups[groups.length - 1];
    if (last && last[0].kind === o.kind) last.push(o);
    else groups.push([o]);
  }
  return groups;
}

export class ChildApplier {
  private readonly applied = new Map<string, AppliedRecord>();

  constructor(private readonly opts: ApplierOptions) {}

  /** Whether a child event is only the echo of the controller's own apply (nothing to do). */
  isOwnWrite(child: LiveMeta): boolean {
    const mirror = ChildIndex.mirrorOf(child);
    if (mirror === undefined) return false;
    const rec = this.applied.get(`${mirror}|${childKey(child)}`);
    if (!rec || rec.hash !== child.metadata.annotations?.[CONTENT_HASH_ANNOTATION]) return false;
    if (rec.pending) return true;
    if (rec.generation !== undefined) return rec.generation === child.metadata.generation;
    return rec.resourceVersion === child.metadata.resourceVersion;
  }

  /** The generation this controller last applied of a child (`Kind/name`) of `mirror`, for a workload. */
  appliedGeneration(mirror: string, key: string): number | undefined {
    return this.applied.get(`${mirror}|${key}`)?.generation;
  }

  /** What to apply, leave and prune of `mirror`'s children. */
  plan(mirror: string, desired: readonly KubeObject[], live: readonly LiveMeta[]): Plan {
    return planChildren({ mirror, desired, live, applied: (k) => this.applied.get(`${mirror}|${k}`) });
  }

  /** Apply and prune as planned; the outcome when something failed, else undefined. */
  async converge(
    mirror: RegistryMirrorObject,
    plan: Plan,
    live: readonly LiveMeta[],
    log: Logger,
  ): Promise<ReconcileOutcome | undefined> {
    const name = mirrorName(mirror);
    // Applied with force: only children carrying this mirror's labels (all a child informer
    // shows). An object of a child's name that was read, not watched, may be anyone's.
    const ours = new Set(live.filter((l) => ChildIndex.mirrorOf(l) === name).map(childKey));
    // Never over another mirror's child (whatever its labels say now).
    const taken = takenByAnotherMirror(name, plan.apply, live, this.opts);
    if (taken) return taken;
    // Children of one kind go together (two ConfigMaps, two Services); kinds in apply order.
    for (const group of byKind(plan.apply)) {
      const outcomes = await Promise.all(group.map((child) => this.applyChild(mirror, child, ours, log)));
      const failed = outcomes.find((o) => o !== undefined);
      if (failed) return failed;
    }
    for (const child of plan.prune) {
      const failed = await this.prune(name, child, log);
      if (failed) return failed;
    }
    return undefined;
  }

  /** Delete the children of a mirror that is gone, and forget it. */
  async pruneOrphans(name: string, log: Logger): Promise<void> {
    for (const child of this.plan(name, [], this.opts.children.of(name)).prune) {
      await this.opts.client.delete(child);
      log.info(
        { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace },
        'deleted child of a deleted mirror',
      );
    }
    for (const key of this.applied.keys()) if (key.startsWith(`${name}|`)) this.applied.delete(key);
  }

  private async prune(name: string, child: LiveMeta, log: Logger): Promise<ReconcileOutcome | undefined> {
    const where = { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace };
    try {
      await this.opts.client.delete(child);
      this.applied.delete(`${name}|${childKey(child)}`);
      log.info(where, 'pruned');
      return undefined;
    } catch (err) {
      this.opts.metrics.errorsTotal.inc({ type: 'prune' });
      log.warn({ ...where, err: describeError(err) }, 'prune failed');
      return {
        type: 'Retrying',
        reason: 'PruneFailed',
        message: `Deleting ${child.kind} ${child.metadata.namespace}/${child.metadata.name} failed: ${describeError(err)}.`,
      };
    }
  }

  /** Apply one child; an outcome when it failed, else undefined. */
  private async applyChild(
    mirror: RegistryMirrorObject,
    child: KubeObject,
    ours: ReadonlySet<string>,
    log: Logger,
  ): Promise<ReconcileOutcome | undefined> {
    const name = mirrorName(mirror);
    const { client, metrics } = this.opts;
    const namespace = child.metadata.namespace ?? this.opts.namespace;
    const where = { kind: child.kind, name: child.metadata.name, namespace };
    const key = `${name}|${childKey(child)}`;
    const hash = child.metadata.annotations?.[CONTENT_HASH_ANNOTATION] ?? '';
    // The watch may deliver the change before the response arrives: it is ours already.
    this.applied.set(key, { hash, pending: true });
    try {
      // A child the controller has not seen as its own is applied without force: if someone
      // else made an object of that name, the API server answers 409 and nothing is repointed.
      const result = await client.apply(child, ours.has(childKey(child)));
      const generation = GENERATION_KINDS.has(child.kind) ? result.metadata?.generation : undefined;
      this.applied.set(key, {
        hash,
        resourceVersion: result.metadata?.resourceVersion,
        ...(generation !== undefined ? { generation } : {}),
      });
      log.info(where, 'applied');
    } catch (err) {
      this.applied.delete(key);
      metrics.errorsTotal.inc({ type: 'apply' });
      log.warn({ ...where, err: describeError(err) }, 'apply failed');
      if (errorStatus(err) === 409 && !ours.has(childKey(child))) {
        const legacy = await this.opts.takeover.claim(mirror, child, log);
        if (legacy) return legacy;
        return {
          type: 'Stalled',
          reason: 'ForeignObject',
          message:
            `${child.kind} ${namespace}/${child.metadata.name} exists and was not created by mirror-synth ` +
            `(${describeError(err)}). mirror-synth does not take over objects it did not create: ` +
            `delete it (kubectl -n ${namespace} delete ${child.kind.toLowerCase()} ${child.metadata.name}) or rename the RegistryMirror.`,
        };
      }
      const message = `Applying ${child.kind} ${namespace}/${child.metadata.name} failed: ${describeError(err)}.`;
      if (isTransient(err)) return { type: 'Retrying', reason: 'ApplyFailed', message };
      const hint =
        errorStatus(err) === 403
          ? "Check the controller's RBAC (mirror-synth controller-manifests)."
          : errorStatus(err) === 422
            ? 'The API server refused the object; fields such as a StatefulSet selector cannot change in place: delete the object and the controller recreates it.'
            : 'Fix the RegistryMirror spec.';
      return { type: 'Stalled', reason: 'ApplyRejected', message: `${message} ${hint}` };
    }
    return undefined;
  }
}
