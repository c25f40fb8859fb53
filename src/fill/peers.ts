/**
 * The mirror's replicas, for the streaming fill's digest owners: a fixed list (`--peers`), or the
 * StatefulSet's pods as the headless Service's DNS SRV records name them (`--peers-srv`), looked
 * up again every few seconds. Each SRV target of a StatefulSet pod is
 * `<pod>.<service>.<namespace>.svc.<domain>`: the pod name is its first label, so a replica keeps
 * its name, and its digests, across restarts and new IPs.
 *
 * Only the StatefulSet's own pods are replicas: a target must be `<statefulset>-<ordinal>` under
 * the Service's domain, the StatefulSet's name being this replica's pod name without its ordinal.
 * Any other pod that matches the Service's selector has a target of another form (its IP, dashed,
 * or a hostname of its own) and is left out. A pod given the labels, and also a StatefulSet pod's
 * hostname and the Service as its subdomain, would pass: creating pods in the mirror's namespace is
 * trusted. A name with more than one address of a family (a second pod claiming it) is left out.
 * Each replica's addresses are looked up too: the fill honours a request's peer header only from
 * one (fill.ts).
 */
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

import type { Peer } from './fill.js';
import { FILL_DEFAULTS } from './protocol.js';

/** `name=host:port,...`: a fixed set of replicas (a host given as an IP is also its address). */
export function parsePeers(list: string): Peer[] {
  return list
    .split(',')
    .filter(Boolean)
    .map((item) => {
      const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)=([^=\s]+):(\d{1,5})$/.exec(item);
      if (!m) throw new Error(`a peer is <pod name>=<host>:<port>, got '${item}'`);
      const host = m[3].replace(/^\[(.*)\]$/, '$1');
      return { name: m[1], address: `${m[3]}:${m[4]}`, ...(isIP(host) ? { ips: [host] } : {}) };
    });
}

export interface SrvPeers {
  /** The replicas of the last successful lookup (with `self` always among them). */
  readonly current: () => readonly Peer[];
  readonly stop: () => void;
}

/**
 * The pod name of an SRV target when it is one of the StatefulSet's pods under `srvName`'s domain
 * (`_http._tcp.<domain>`), else undefined.
 */
export function statefulSetPod(target: string, srvName: string, statefulSet: string): string | undefined {
  const domain = srvName
    .toLowerCase()
    .replace(/\.$/, '')
    .replace(/^(_[^.]+\.){2}/, '');
  const name = target.toLowerCase().replace(/\.$/, '');
  const pod = name.split('.')[0];
  if (name !== `${pod}.${domain}`) return undefined;
  if (!pod.startsWith(`${statefulSet}-`) || !/^(0|[1-9][0-9]*)$/.test(pod.slice(statefulSet.length + 1)))
    return undefined;
  return pod;
}

/**
 * Looks `name` up now and every `intervalMs`. A failed lookup keeps the last set: a DNS hiccup
 * must not move every digest to a new owner. Until a lookup succeeds the set is `self` alone, so
 * the fill serves from its own Distribution.
 */
export function srvPeers(
  name: string,
  self: Peer,
  opts: {
    intervalMs?: number;
    log?: (msg: string, fields: Record<string, unknown>) => void;
    /** DNS servers to ask (`127.0.0.1:5353`). @default - the system's */
    servers?: readonly string[];
  } = {},
): SrvPeers {
  const resolver = new Resolver({ timeout: 2000, tries: 2 });
  if (opts.servers) resolver.setServers([...opts.servers]);
  const ordinal = /^(.+)-(0|[1-9][0-9]*)$/.exec(self.name);
  if (!ordinal) throw new Error(`this replica's pod name '${self.name}' is not <statefulset>-<ordinal>`);
  const statefulSet = ordinal[1];
  let peers: readonly Peer[] = [self];
  let ignored = '';
  let stopped = false;
  const addresses = async (host: string): Promise<string[] | undefined> => {
    const family = async (lookup: Promise<string[]>): Promise<string[]> =>
      lookup.catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENODATA' || err.code === 'ENOTFOUND') return [];
        throw err;
      });
    const [v4, v6] = await Promise.all([family(resolver.resolve4(host)), family(resolver.resolve6(host))]);
    // a StatefulSet pod's name has one address per family: more is a second pod claiming it
    return v4.length > 1 || v6.length > 1 ? undefined : [...v4, ...v6];
  };
  const lookup = async (): Promise<void> => {
    try {
      const records = await resolver.resolveSrv(name);
      const found: Peer[] = [];
      const strangers: string[] = [];
      for (const r of records) {
        const pod = statefulSetPod(r.name, name, statefulSet);
        const ips = pod !== undefined && pod !== self.name ? await addresses(r.name) : undefined;
        if (pod === self.name) continue;
        if (pod === undefined || ips === undefined || found.some((p) => p.name === pod)) strangers.push(r.name);
        else found.push({ name: pod, address: `${r.name}:${r.port}`, ips });
      }
      const next = [self, ...found].sort((a, b) => a.name.localeCompare(b.name));
      if (next.map((p) => p.name).join() !== peers.map((p) => p.name).join())
        opts.log?.('replicas', { peers: next.map((p) => p.name) });
      const left = strangers.sort().join();
      if (left !== ignored && left !== '')
        opts.log?.(`replica lookup: left out what is not one of StatefulSet ${statefulSet}'s pods`, {
          srv: name,
          targets: strangers,
        });
      ignored = left;
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
  const timer = setInterval(
    () => {
      if (!stopped) void lookup();
    },
    opts.intervalMs ?? FILL_DEFAULTS.peersSrvIntervalSeconds * 1000,
  );
  timer.unref();
  return {
    current: () => peers,
    stop: () => {
      stopped = true;
      clearInterval(timer);
    },
  };
}
