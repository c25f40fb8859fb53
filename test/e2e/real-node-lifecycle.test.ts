// The real-node cluster itself (test/support/components/node.ts): it runs a Pod, and stop() leaves the host
// as it found it: no process, mount, network namespace, interface, iptables rule or cgroup.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { NODE_AGENT_IMAGE } from '../../src/construct/images.js';
import { hostState, nodeClusterUnavailable, startNodeCluster } from '../support/components/node.js';
import { importStandInImages, PAUSE_IMAGE } from '../support/fixtures/stand-in-images.js';
import { deletePod, nodeClients, runPod } from '../support/kube/node-workloads.js';

const unavailable = await nodeClusterUnavailable();

describe.skipIf(unavailable !== undefined)('the real-node cluster', () => {
  it('runs a Pod, then stops leaving no process, mount, namespace, interface, rule or cgroup behind', async () => {
    const before = await hostState();
    const node = await startNodeCluster({
      sandboxImage: PAUSE_IMAGE,
      images: ({ ctr, address, caPem, root }) =>
        importStandInImages({ ctr, address, caPem, workDir: join(root, 'images') }),
    });
    let pids: number[] = [];
    try {
      const { core } = nodeClients(node);
      await runPod(core, 'busybox', NODE_AGENT_IMAGE); // busybox's `sh` exits at once: Running is enough
      pids = (await node.containerProcesses()).map((p) => p.pid);
      expect(pids.length).toBeGreaterThan(0);
      await deletePod(core, 'busybox');
    } finally {
      await node.stop();
    }
    expect(await hostState()).toEqual(before);
    expect(existsSync(node.root)).toBe(false);
    for (const pid of pids) expect(existsSync(`/proc/${pid}`), `container process ${pid}`).toBe(false);
    const cgroups = (await readdir('/sys/fs/cgroup')).filter((h) =>
      existsSync(join('/sys/fs/cgroup', h, node.cgroupRoot)),
    );
    expect(cgroups).toEqual([]);
  });
});

if (unavailable) {
  describe('the real-node cluster', () => {
    it.skip(unavailable, () => {});
  });
}
