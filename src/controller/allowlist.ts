/**
 * The allowlist as it is now: the lists the controller was started with are fixed, every other
 * one comes from the allowlist ConfigMap in its namespace, read from the informer cache.
 */
import type { Logger } from 'pino';

import {
  ALLOWLIST_KEYS,
  ALLOWLIST_NAME,
  ALLOWLISTS,
  type LivePolicy,
  type MirrorPolicy,
  readAllowlistData,
} from '../api/policy.js';
import type { Cache } from './caches.js';

export class LiveAllowlist {
  /** The allowlist as last read, and the ConfigMap data it came from. */
  private live: { data: string; policy: LivePolicy } | undefined;

  constructor(
    private readonly configMaps: Cache<unknown>,
    private readonly namespace: string,
    /** Lists set by the controller's own flags, variables or cdk8s.yaml. */
    private readonly fixed: MirrorPolicy,
    private readonly logger: Logger,
  ) {}

  /**
   * The allowlist now: each fixed list, every other one from the ConfigMap (none while it is
   * missing). Logged when the ConfigMap's data changes, a broken list as an error naming the key
   * and the entry.
   */
  current(): LivePolicy {
    const cm = this.configMaps.get(ALLOWLIST_NAME, this.namespace) as { data?: Record<string, string> } | undefined;
    const data = JSON.stringify(cm?.data ?? null);
    if (this.live?.data === data) return this.live.policy;
    const where = `ConfigMap ${this.namespace}/${ALLOWLIST_NAME}`;
    const read = readAllowlistData(cm?.data, where);
    const fixed = this.fixed;
    const lists: { -readonly [K in keyof MirrorPolicy]: MirrorPolicy[K] } = {};
    const broken: { -readonly [K in keyof LivePolicy['broken']]: string } = {};
    for (const list of ALLOWLISTS) {
      if (fixed[list] !== undefined) lists[list] = fixed[list];
      else if (read.broken[list] !== undefined) broken[list] = read.broken[list];
      else if (read.lists[list] !== undefined) lists[list] = read.lists[list];
    }
    const policy = { lists, broken };
    if (this.live !== undefined || cm !== undefined) {
      const keys = (l: object) => Object.keys(l).map((list) => ALLOWLIST_KEYS[list as keyof typeof ALLOWLIST_KEYS]);
      this.logger.info(
        { configMap: where, exists: cm !== undefined, lists: keys(lists), fixed: keys(fixed) },
        'allowlist read; re-checking every mirror',
      );
      for (const [list, message] of Object.entries(broken))
        this.logger.error(
          { configMap: where, key: ALLOWLIST_KEYS[list as keyof typeof ALLOWLIST_KEYS] },
          `${message}; the mirrors this list governs are refused until it is fixed`,
        );
    }
    this.live = { data, policy };
    return policy;
  }
}
