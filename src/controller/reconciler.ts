/**
 * Reconcile one RegistryMirror: read it and its Secret from the informer caches, synthesize its
 * children with the same code as the CLI, apply what changed, prune what is no longer wanted,
 * and write status once.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';

import { synthesizeMirror } from '../synth/chart.js';
import { SpecError } from '../api/errors.js';
import type { KubeObject } from '../api/kube-object.js';
import type { MirrorStatus } from '../api/schema.js';
import { type MirrorInput, parseMirrorResource } from '../api/validate.js';
import { type SecretLike, resolveCredentials } from './credentials.js';
import { describeError, errorStatus, isTransient } from '../api/kube-errors.js';
import { canonicalJson, withContentHash } from './hash.js';
import type { KubeClient, RegistryMirrorObject } from './kube.js';
import {
  CONTENT_HASH_ANNOTATION,
  GENERATION_KINDS,
  KIND,
  MANAGED_BY,
  MANAGED_BY_LABEL,
  MIRROR_API_VERSION,
  MIRROR_LABEL,
} from '../api/names.js';
import type { ControllerMetrics } from './metrics.js';
import { type AppliedRecord, type LiveMeta, childKey, planChildren } from './plan.js';
import { CONDITION_TYPES, type ReconcileOutcome, eventFor, nextStatus, statusChanged } from './status.js';

/** A SpecError as one condition message: every problem, then what to do. */
export function specMessage(err: SpecError): string {
  return `${err.problems.map((p) => p.message).join('; ')}. Fix the RegistryMirror spec.`;
}

/** Read access to an informer cache. */
export interface Cache<T> {
  get(name: string, namespace?: string): T | undefined;
  list(): ReadonlyArray<T>;
}

/**
 * Live children by mirror name, kept up to date from the child informers' callbacks, so a
 * reconcile does not scan every cached object.
 */
export class ChildIndex {
  private readonly byMirror = new Map<string, Map<string, LiveMeta>>();
  /** Child key → the mirror it is filed under. */
  private readonly owner = new Map<string, string>();

  /** The mirror a child belongs to, when it is one of ours. */
  static mirrorOf(obj: LiveMeta): string | undefined {
    const labels = obj.metadata.labels;
    if (labels?.[MANAGED_BY_LABEL] !== MANAGED_BY) return undefined;
    return labels[MIRROR_LABEL] || undefined;
  }

  update(obj: LiveMeta, verb: 'add' | 'update' | 'delete'): string | undefined {
    const key = childKey(obj);
    const mirror = ChildIndex.mirrorOf(obj);
    // A relabelled child: drop it from the mirror it was filed under.
    const previous = this.owner.get(key);
    if (previous !== undefined && (previous !== mirror || verb === 'delete')) {
      const children = this.byMirror.get(previous);
      children?.delete(key);
      if (children?.size === 0) this.byMirror.delete(previous);
      this.owner.delete(key);
    }
    if (mirror === undefined || verb === 'delete') return mirror;
    let children = this.byMirror.get(mirror);
    if (!children) this.byMirror.set(mirror, (children = new Map<string, LiveMeta>()));
    children.set(key, obj);
    this.owner.set(key, mirror);
    return mirror;
  }

  of(mirror: string): LiveMeta[] {
    return [...(this.byMirror.get(mirror)?.values() ?? [])];
  }

  mirrors(): string[] {
    return [...this.byMirror.keys()];
  }
}

/** What the worker should do with a key after a reconcile. */
export type Requeue = 'none' | 'backoff';

export interface ReconcilerOptions {
  readonly client: KubeClient;
  readonly namespace: string;
  readonly clusterDomain?: string;
  readonly mirrors: Cache<RegistryMirrorObject>;
  readonly secrets: Cache<SecretLike & KubernetesObject>;
  readonly children: ChildIndex;
  /** Kinds that have an informer; others are read with a GET before deciding to apply. */
  readonly watchedKinds: ReadonlySet<string>;
  readonly logger: Logger;
  readonly metrics: ControllerMetrics;
  readonly now?: () => Date;
}

interface StatusMemo {
  readonly uid: string;
  /** Canonical JSON of the status the cache showed before the write. */
  readonly before: string;
  readonly written: MirrorStatus;
  readonly resourceVersion: string | undefined;
}

export class Reconciler {
  private readonly applied = new Map<string, AppliedRecord>();
  private readonly statusMemo = new Map<string, StatusMemo>();
  private readonly now: () => Date;

  constructor(private readonly opts: ReconcilerOptions) {
    this.now = opts.now ?? (() => new Date());
  }

  /** Whether a child event is only the echo of the controller's own apply (nothing to do). */
  isOwnWrite(child: LiveMeta): boolean {
    const mirror = ChildIndex.mirrorOf(child);
    if (mirror === undefined) return false;
    const rec = this.applied.get(`${mirror}|${childKey(child)}`);
    if (!rec || rec.hash !== child.metadata.annotations?.[CONTENT_HASH_ANNOTATION]) return false;
    if (rec.generation !== undefined) return rec.generation === child.metadata.generation;
    return rec.resourceVersion === child.metadata.resourceVersion;
  }

  /** Whether a RegistryMirror event is only the echo of the controller's own status write. */
  isOwnStatusWrite(mirror: RegistryMirrorObject): boolean {
    const memo = this.statusMemo.get(mirror.metadata?.name ?? '');
    return (
      memo !== undefined &&
      memo.resourceVersion !== undefined &&
      memo.resourceVersion === mirror.metadata?.resourceVersion
    );
  }

  async reconcile(name: string): Promise<Requeue> {
    const { logger, metrics } = this.opts;
    const log = logger.child({ mirror: name });
    const end = metrics.reconcileDuration.startTimer();
    try {
      const mirror = this.opts.mirrors.get(name);
      if (!mirror) {
        await this.pruneOrphans(name, log);
        for (const condition of CONDITION_TYPES) metrics.mirrorCondition.remove({ mirror: name, condition });
        metrics.reconcileTotal.inc({ result: 'deleted' });
        return 'none';
      }
      if (mirror.metadata?.deletionTimestamp) return 'none'; // the garbage collector removes the children
      const outcome = await this.converge(mirror, log);
      await this.report(mirror, outcome, log);
      const result = outcome.type === 'Applied' ? 'success' : outcome.type === 'Stalled' ? 'stalled' : 'retry';
      metrics.reconcileTotal.inc({ result });
      return outcome.type === 'Retrying' ? 'backoff' : 'none';
    } finally {
      end();
    }
  }

  /** Forget in-memory records of a mirror (after it is gone). */
  private forget(name: string): void {
    this.statusMemo.delete(name);
    for (const key of this.applied.keys()) if (key.startsWith(`${name}|`)) this.applied.delete(key);
  }

  private async pruneOrphans(name: string, log: Logger): Promise<void> {
    const owned = planChildren({
      mirror: name,
      desired: [],
      live: this.opts.children.of(name),
      applied: () => undefined,
    }).prune;
    for (const child of owned) {
      await this.opts.client.delete(child);
      log.info(
        { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace },
        'deleted child of a deleted mirror',
      );
    }
    this.forget(name);
  }

  private desiredChildren(mirror: RegistryMirrorObject, input: MirrorInput): KubeObject[] | ReconcileOutcome {
    const { namespace } = this.opts;
    const name = input.name;
    const secret =
      input.spec.credentialsSecret === undefined
        ? undefined
        : this.opts.secrets.get(input.spec.credentialsSecret, namespace);
    const creds = resolveCredentials({
      mirror: name,
      upstreamUrl: input.spec.upstreamUrl,
      credentialsSecret: input.spec.credentialsSecret,
      namespace,
      secret,
    });
    if (creds && !creds.ok) return { type: 'Stalled', reason: creds.reason, message: creds.message };
    const effective: MirrorInput = creds
      ? { ...input, spec: { ...input.spec, credentialsSecret: creds.secretName } }
      : input;
    let objects: KubeObject[];
    try {
      objects = synthesizeMirror(effective, {
        namespace,
        ...(this.opts.clusterDomain ? { clusterDomain: this.opts.clusterDomain } : {}),
        ...(creds ? { credentialsHash: creds.hash } : {}),
      });
    } catch (err) {
      if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
      throw err;
    }
    if (creds?.derived) objects = [creds.derived, ...objects];
    const ownerReferences = [
      {
        apiVersion: MIRROR_API_VERSION,
        kind: KIND,
        name,
        uid: mirror.metadata?.uid ?? '',
        controller: true,
        blockOwnerDeletion: true,
      },
    ];
    return objects.map((o) => withContentHash({ ...o, metadata: { ...o.metadata, namespace, ownerReferences } }));
  }

  private async converge(mirror: RegistryMirrorObject, log: Logger): Promise<ReconcileOutcome> {
    const name = mirror.metadata?.name ?? '';
    const { client, namespace, metrics } = this.opts;
    let input: MirrorInput;
    try {
      input = parseMirrorResource(mirror, `cluster:registrymirror/${name}`);
    } catch (err) {
      if (err instanceof SpecError) return { type: 'Stalled', reason: 'InvalidSpec', message: specMessage(err) };
      throw err;
    }
    const desired = this.desiredChildren(mirror, input);
    if (!Array.isArray(desired)) return desired;

    const live = [...this.opts.children.of(name)];
    // Kinds without an informer: read them, so the content-hash check still applies.
    for (const d of desired) {
      if (this.opts.watchedKinds.has(d.kind)) continue;
      const obj = await client.read(d);
      if (obj) live.push(obj as LiveMeta);
    }
    const plan = planChildren({ mirror: name, desired, live, applied: (k) => this.applied.get(`${name}|${k}`) });

    for (const child of plan.apply) {
      const where = { kind: child.kind, name: child.metadata.name, namespace };
      try {
        const result = await client.apply(child);
        const generation = GENERATION_KINDS.has(child.kind) ? result.metadata?.generation : undefined;
        this.applied.set(`${name}|${childKey(child)}`, {
          hash: child.metadata.annotations?.[CONTENT_HASH_ANNOTATION] ?? '',
          resourceVersion: result.metadata?.resourceVersion,
          ...(generation !== undefined ? { generation } : {}),
        });
        log.info(where, 'applied');
      } catch (err) {
        metrics.errorsTotal.inc({ type: 'apply' });
        const message = `Applying ${child.kind} ${namespace}/${child.metadata.name} failed: ${describeError(err)}.`;
        log.warn({ ...where, err: describeError(err) }, 'apply failed');
        return isTransient(err)
          ? { type: 'Retrying', reason: 'ApplyFailed', message }
          : {
              type: 'Stalled',
              reason: 'ApplyRejected',
              message: `${message} Check the spec and the controller's RBAC.`,
            };
      }
    }
    for (const child of plan.prune) {
      const where = { kind: child.kind, name: child.metadata.name, namespace: child.metadata.namespace };
      try {
        await client.delete(child);
        this.applied.delete(`${name}|${childKey(child)}`);
        log.info(where, 'pruned');
      } catch (err) {
        metrics.errorsTotal.inc({ type: 'prune' });
        log.warn({ ...where, err: describeError(err) }, 'prune failed');
        return {
          type: 'Retrying',
          reason: 'PruneFailed',
          message: `Deleting ${child.kind} ${child.metadata.namespace}/${child.metadata.name} failed: ${describeError(err)}.`,
        };
      }
    }
    return {
      type: 'Applied',
      applied: plan.apply.length,
      unchanged: plan.unchanged.length,
      pruned: plan.prune.length,
      namespace,
    };
  }

  /** The status the controller should compare against: the cache's, unless the cache has not caught up with our last write. */
  private previousStatus(mirror: RegistryMirrorObject): MirrorStatus | undefined {
    const cached = mirror.status;
    const memo = this.statusMemo.get(mirror.metadata?.name ?? '');
    if (!memo || memo.uid !== mirror.metadata?.uid) return cached;
    if (memo.resourceVersion === mirror.metadata?.resourceVersion) return cached;
    return canonicalJson(cached ?? null) === memo.before ? memo.written : cached;
  }

  private async report(mirror: RegistryMirrorObject, outcome: ReconcileOutcome, log: Logger): Promise<void> {
    const name = mirror.metadata?.name ?? '';
    const generation = mirror.metadata?.generation ?? 0;
    const previous = this.previousStatus(mirror);
    const status = nextStatus(previous, outcome, generation, this.now());
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
      try {
        await this.opts.client.recordEvent(mirror, event);
      } catch (err) {
        this.opts.metrics.errorsTotal.inc({ type: 'event' });
        log.warn({ err: describeError(err) }, 'could not record an Event');
      }
    }
  }
}
