/**
 * The data of the Secrets mirrors reference, and of no other Secret.
 *
 * The Secret informer caches metadata only (see watches.ts). When a reconcile needs a referenced
 * Secret's data it reads that one Secret, and keeps it for as long as its resourceVersion in the
 * metadata cache is unchanged, so a resync does not read it again. Entries no mirror references
 * any more are dropped.
 */
import type { CoreV1Api } from '@kubernetes/client-node';

import { errorStatus } from '../api/kube-errors.js';
import type { SecretLike } from './credentials.js';
import type { Cache } from './reconciler.js';

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
    private readonly meta: Cache<{ metadata?: { name?: string; resourceVersion?: string } }>,
  ) {}

  /** The Secret with its data, or `undefined` when it does not exist. */
  async get(name: string): Promise<SecretLike | undefined> {
    const meta = this.meta.get(name, this.namespace);
    if (meta === undefined) {
      this.data.delete(name);
      return undefined;
    }
    const cached = this.data.get(name);
    if (cached && cached.resourceVersion === meta.metadata?.resourceVersion) return cached.secret;
    try {
      const s = await this.core.readNamespacedSecret({ name, namespace: this.namespace });
      const secret: SecretLike = {
        metadata: { name, namespace: this.namespace, uid: s.metadata?.uid },
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
