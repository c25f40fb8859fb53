// The real-node cluster itself (test/support/node.ts): it runs a Pod, and stop() leaves the host
// as it found it: no process, mount, network namespace, interface, iptables rule or cgroup.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

import { NODE_AGENT_IMAGE } from '../../src/construct/images.js';
import { nodeClusterUnavailable, startNodeCluster } from '../support/node.js';
import { deletePod, nodeClients, runPod } from '../support/node-workloads.js';
import { importStandInImages, PAUSE_IMAGE } from '../support/stand-in-images.js';

const exec = promisify(execFile);
const unavailable = await nodeClusterUnavailable();

/** What of the host a node could leave behind. */
async function hostState() {
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').sort();
  const { stdout: links } = await exec('ip', ['-o', 'link']);
  const { stdout: rules } = await exec('iptables-save');
  return {
    mounts,
    links: links
      .split('\n')
      .map((l) => l.split(':')[1]?.trim())
      .filter(Boolean)
      .sort(),
    rules: rules
      .split('\n')
      .filter((l) => l.startsWith('-A'))
      .sort(),
    netns: (await readdir('/run/netns').catch(() => [])).filter((n) => n.startsWith('ms-node-')).sort(),
  };
}

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
