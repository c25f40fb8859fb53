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
