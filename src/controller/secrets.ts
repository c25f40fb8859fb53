/**
 * The data of the Secrets mirrors reference, and of no other Secret.
 *
 * The Secret informer caches metadata only (see watches.ts). When a reconcile needs a referenced
 * Secret's data it reads that one Secret, and only when the Secret opted in to the mirror (its
 * `mirror-synth.k8s.osp.tech/mirrors` annotation lists it; otherwise it returns the metadata alone), and keeps it for as long as its resourceVersion in the
 * metadata cache is unchanged, so a resync does not read it again. Entries no mirror references
 * any more are dropped.
 */
import type { CoreV1Api } from '@kubernetes/client-node';

import { errorStatus } from '../api/kube-errors.js';
import { SECRET_MIRRORS_ANNOTATION } from '../api/names.js';
import type { Cache } from './caches.js';
import { type SecretLike, secretOptedIn } from './credentials.js';

/** The opt-in annotation alone (never `last-applied-configuration`, which can hold the data). */
function optIn(s: { metadata?: { annotations?: Record<string, string> } }): Record<string, string> {
  const value = s.metadata?.annotations?.[SECRET_MIRRORS_ANNOTATION];
  return value === undefined ? {} : { [SECRET_MIRRORS_ANNOTATION]: value };
}

interface Entry {
  readonly resourceVersion: string | undefined;
  readonly secret: SecretLike;
}

export class ReferencedSecrets {
  private readonly data = new Map<string, Entry>();

  constructor(
    private readonly core: CoreV1Api,
    private readonly namespace: string,
    /** The metadata-only Secret cache. */
    private readonly meta: Cache<{
      metadata?: { name?: string; resourceVersion?: string; uid?: string; annotations?: Record<string, string> };
    }>,
  ) {}

  /**
   * The Secret with its data, or `undefined` when it does not exist. When it has not opted in to
   * `mirror` sending it to `host`, its metadata alone: its data is not read.
   */
  async get(name: string, mirror: string, host: string): Promise<SecretLike | undefined> {
    const meta = this.meta.get(name, this.namespace);
    if (meta === undefined) {
      this.data.delete(name);
      return undefined;
    }
    const metadata = { name, namespace: this.namespace, uid: meta.metadata?.uid, annotations: optIn(meta) };
    if (!secretOptedIn({ metadata }, mirror, host)) return { metadata };
    const cached = this.data.get(name);
    if (cached && cached.resourceVersion === meta.metadata?.resourceVersion) return cached.secret;
    try {
      const s = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
      const secret: SecretLike = {
        metadata: { name, namespace: this.namespace, uid: s.metadata?.uid, annotations: optIn(s) },
        type: s.type,
        data: s.data ?? {},
      };
      this.data.set(name, { resourceVersion: s.metadata?.resourceVersion, secret });
      return secret;
    } catch (err) {
      if (errorStatus(err) === 404) {
        this.data.delete(name);
        return undefined;
      }
      throw err;
    }
  }

  /** Forget the data of every Secret not in `referenced`. */
  retainOnly(referenced: ReadonlySet<string>): void {
    for (const name of this.data.keys()) if (!referenced.has(name)) this.data.delete(name);
  }

  /** Names of the Secrets whose data is held, for tests and metrics. */
  held(): string[] {
    return [...this.data.keys()];
  }
}
