/**
 * The mirror's replicas, for the streaming fill's digest owners: a fixed list (`--peers`), or the
 * StatefulSet's pods as the headless Service's DNS SRV records name them (`--peers-srv`), looked
 * up again every few seconds. Each SRV target of a StatefulSet pod is
 * `<pod>.<service>.<namespace>.svc.<domain>`: the pod name is its first label, so a replica keeps
 * its name, and its digests, across restarts and new IPs.
 */
import { Resolver } from 'node:dns/promises';

import type { Peer } from './fill.js';

/** `name=host:port,...`: a fixed set of replicas. */
export function parsePeers(list: string): Peer[] {
  return list
    .split(',')
    .filter(Boolean)
    .map((item) => {
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=([^=\s]+:\d{1,5})$/.exec(item);
      if (!m) throw new Error(`a peer is <pod name>=<host>:<port>, got '${item}'`);
      return { name: m[1], address: m[3] };
    });
}

export interface SrvPeers {
  /** The replicas of the last successful lookup (with `self` always among them). */
  readonly current: () => readonly Peer[];
  readonly stop: () => void;
}

/**
 * Looks `name` up now and every `intervalMs`. A failed lookup keeps the last set: a DNS hiccup
 * must not move every digest to a new owner. Until a lookup succeeds the set is `self` alone, so
 * the fill serves from its own Distribution.
 */
export function srvPeers(
  name: string,
  self: Peer,
  opts: { intervalMs?: number; log?: (msg: string, fields: Record<string, unknown>) => void } = {},
): SrvPeers {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  let peers: readonly Peer[] = [self];
  let stopped = false;
  const lookup = async (): Promise<void> => {
    try {
      const records = await resolver.resolveSrv(name);
      const found = records
        .map((r) => ({ name: r.name.split('.')[0], address: `${r.name}:${r.port}` }))
        .filter((p) => p.name !== self.name);
      const next = [self, ...found].sort((a, b) => a.name.localeCompare(b.name));
      if (next.map((p) => p.name).join() !== peers.map((p) => p.name).join())
        opts.log?.('replicas', { peers: next.map((p) => p.name) });
      peers = next;
    } catch (err) {
      opts.log?.('replica lookup failed, keeping the last set', {
        srv: name,
        error: (err as Error).message,
        peers: peers.map((p) => p.name),
      });
    }
  };
  void lookup();
  const timer = setInterval(() => {
    if (!stopped) void lookup();
  }, opts.intervalMs ?? 10_000);
  timer.unref();
  return {
    current: () => peers,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
