// The fill's replicas from the headless Service's SRV records (`--peers-srv`), against a real DNS
// server on loopback: only the StatefulSet's own pods are replicas, each with its addresses, which
// the fill honours a peer's request from.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { srvPeers, statefulSetPod } from '../../src/fill/peers.js';
import { type DnsServer, startDns } from '../support/primitives/dns.js';
import { waitFor } from '../support/primitives/wait.js';

const SRV = '_http._tcp.registry-mirror-m-headless.ns.svc.cluster.local';
const DOMAIN = 'registry-mirror-m-headless.ns.svc.cluster.local';

describe("the fill's replicas from SRV records", () => {
  let dns: DnsServer;
  beforeAll(async () => {
    dns = await startDns(0);
  });
  afterAll(async () => {
    await dns?.close();
  });

  it("takes only the StatefulSet's own pods, <statefulset>-<ordinal> under the Service's domain, with their addresses", async () => {
    const targets = [
      'registry-mirror-m-0', // this replica
      'registry-mirror-m-1',
      'registry-mirror-m-2',
      '10-244-1-7', // a pod matching the Service's selector, without a hostname: its IP, dashed
      'evil', // a pod with a hostname of its own
      'registry-mirror-m-01', // not an ordinal
      'registry-mirror-mx-3', // another StatefulSet's name, which ours begins
      'registry-mirror-m-4', // claimed by two pods: two addresses
    ];
    dns.setSrv(SRV, [
      ...targets.map((t) => ({ target: `${t}.${DOMAIN}`, port: 5000 })),
      { target: `registry-mirror-m-5.other.ns.svc.cluster.local`, port: 5000 }, // another Service's domain
    ]);
    targets.forEach((t, i) => dns.set(`${t}.${DOMAIN}`, `10.0.0.${i}`));
    dns.set(`registry-mirror-m-4.${DOMAIN}`, ['10.0.0.4', '10.0.0.44']);
    dns.set(`registry-mirror-m-5.other.ns.svc.cluster.local`, '10.0.0.5');
    const logs: { msg: string; fields: Record<string, unknown> }[] = [];
    const peers = srvPeers(
      SRV,
      { name: 'registry-mirror-m-0', address: '127.0.0.1:5003' },
      { servers: [`127.0.0.1:${dns.port}`], log: (msg, fields) => logs.push({ msg, fields }) },
    );
    try {
      const found = await waitFor('the lookup', () => (peers.current().length > 1 ? peers.current() : undefined));
      expect(found).toEqual([
        { name: 'registry-mirror-m-0', address: '127.0.0.1:5003' },
        { name: 'registry-mirror-m-1', address: `registry-mirror-m-1.${DOMAIN}:5000`, ips: ['10.0.0.1'] },
        { name: 'registry-mirror-m-2', address: `registry-mirror-m-2.${DOMAIN}:5000`, ips: ['10.0.0.2'] },
      ]);
      const leftOut = logs.find((l) => l.msg.startsWith('replica lookup: left out'));
      expect(leftOut?.fields.targets).toHaveLength(6);
    } finally {
      peers.stop();
    }
  });

  it('reads a target as a pod name only under the SRV name domain', () => {
    expect(statefulSetPod(`registry-mirror-m-12.${DOMAIN}.`, SRV, 'registry-mirror-m')).toBe('registry-mirror-m-12');
    expect(statefulSetPod(`REGISTRY-MIRROR-M-1.${DOMAIN.toUpperCase()}`, SRV, 'registry-mirror-m')).toBe(
      'registry-mirror-m-1',
    );
    expect(statefulSetPod(`registry-mirror-m-1.x.${DOMAIN}`, SRV, 'registry-mirror-m')).toBeUndefined();
    expect(statefulSetPod(`registry-mirror-m-.${DOMAIN}`, SRV, 'registry-mirror-m')).toBeUndefined();
  });
});
