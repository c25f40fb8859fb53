/**
 * What a reconcile reads instead of the API server: the informer caches, and the live children
 * filed by mirror.
 */
import { MANAGED_BY, MANAGED_BY_LABEL, MIRROR_LABEL } from '../api/names.js';
import { childKey, type LiveMeta } from './plan.js';

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
  /** Child key → the child, whichever mirror it is filed under. */
  private readonly byKey = new Map<string, LiveMeta>();

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
      this.byKey.delete(key);
    }
    if (mirror === undefined || verb === 'delete') return mirror;
    let children = this.byMirror.get(mirror);
    if (!children) this.byMirror.set(mirror, (children = new Map<string, LiveMeta>()));
    children.set(key, obj);
    this.owner.set(key, mirror);
    this.byKey.set(key, obj);
    return mirror;
  }

  /** The child of this key (`Kind/name`), whichever mirror it belongs to. */
  get(key: string): LiveMeta | undefined {
    return this.byKey.get(key);
  }

  of(mirror: string): LiveMeta[] {
    return [...(this.byMirror.get(mirror)?.values() ?? [])];
  }

  mirrors(): string[] {
    return [...this.byMirror.keys()];
  }
}

/**
 * Mirrors by the Secrets they reference, kept up to date from the mirror informer's callbacks
 * (as Flux indexes a field), so a Secret event finds its mirrors without scanning every mirror.
 */
export class SecretIndex {
  /** Mirror → the Secrets it references. */
  private readonly byMirror = new Map<string, readonly string[]>();
  /** Secret → the mirrors referencing it. */
  private readonly bySecret = new Map<string, Set<string>>();

  /** File a mirror under the Secrets it references now (none once it is deleted). */
  update(mirror: string, secrets: readonly string[]): void {
    if (!mirror) return;
    for (const s of this.byMirror.get(mirror) ?? []) {
      const mirrors = this.bySecret.get(s);
      mirrors?.delete(mirror);
      if (mirrors?.size === 0) this.bySecret.delete(s);
    }
    if (secrets.length === 0) {
      this.byMirror.delete(mirror);
      return;
    }
    this.byMirror.set(mirror, secrets);
    for (const s of secrets) {
      let mirrors = this.bySecret.get(s);
      if (!mirrors) this.bySecret.set(s, (mirrors = new Set<string>()));
      mirrors.add(mirror);
    }
  }

  /** Mirrors whose spec.credentialsSecret or spec.objectStorage.s3.credentialsSecret names this Secret. */
  mirrorsUsing(secret: string): string[] {
    return [...(this.bySecret.get(secret) ?? [])];
  }
}
