import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { nodeAgentScript } from '../../src/construct/assets.js';

const NODE_AGENT_SCRIPT = nodeAgentScript();
import { startDns } from '../support/dns.js';
import { waitFor } from '../support/wait.js';

// The node agent script runs for real under /bin/sh, in a temp dir standing for the node's
// /etc/containerd/certs.d. Address look-ups go through a stand-in `getent` on PATH that
// answers from a file the test controls.

const running: ChildProcess[] = [];
afterEach(() => {
  for (const p of running.splice(0)) p.kill('SIGKILL');
});

interface Agent {
  proc: ChildProcess;
  certs: string;
  root: string;
  logs: () => string;
  setAddress: (addr: string) => Promise<void>;
  stop: () => Promise<number | null>;
}

/** Run under busybox sh with only busybox applets on PATH, as in the node agent's image. */
interface BusyboxOptions {
  readonly dnsPort: number;
}

async function startAgent(
  env: Record<string, string>,
  prepare?: (certs: string) => Promise<void>,
  busybox?: BusyboxOptions,
): Promise<Agent> {
  const root = await mkdtemp(join(tmpdir(), 'node-agent-'));
  const certs = join(root, 'certs.d');
  const bin = join(root, 'bin');
  await mkdir(certs);
  await mkdir(bin);
  await prepare?.(certs);
  const script = join(root, 'node-agent.sh');
  await writeFile(script, NODE_AGENT_SCRIPT);
  const addressFile = join(root, 'address');
  await writeFile(addressFile, '');
  await writeFile(
    join(bin, 'getent'),
    `#!/bin/sh\n[ -s "${addressFile}" ] || exit 2\nprintf '%s %s\\n' "$(cat "${addressFile}")" "$2"\n`,
  );
  await chmod(join(bin, 'getent'), 0o755);
  let path = `${bin}:${process.env.PATH}`;
  if (busybox) {
    // Only busybox applets (no getent), and its nslookup pointed at the test DNS server.
    const applets = join(root, 'busybox');
    await mkdir(applets);
    execFileSync(BUSYBOX!, ['--install', '-s', applets]);
    const wrap = join(root, 'wrap');
    await mkdir(wrap);
    await writeFile(
      join(wrap, 'nslookup'),
      `#!${applets}/sh\nexec ${BUSYBOX} nslookup "$1" 127.0.0.1:${busybox.dnsPort}\n`,
    );
    await chmod(join(wrap, 'nslookup'), 0o755);
    path = `${wrap}:${applets}`;
  }
  const proc = spawn(busybox ? BUSYBOX! : 'sh', busybox ? ['sh', script] : [script], {
    env: {
      PATH: path,
      CERTS_DIR: certs,
      HOSTS: 'quay.io',
      SERVER_URL: 'https://quay.io',
      SERVICE_NAME: 'registry-mirror-quay.kube-extra.svc.cluster.local',
      SERVICE_PORT: '5000',
      RESOLVE_INTERVAL: '1',
      MIRROR_NAME: 'quay',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.push(proc);
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  return {
    proc,
    certs,
    root,
    logs: () => out,
    setAddress: (addr) => writeFile(addressFile, addr),
    stop: () =>
      new Promise((resolve) => {
        proc.once('exit', (code) => resolve(code));
        proc.kill('SIGTERM');
      }),
  };
}

/** Poll quickly: the agent re-resolves every second here. */
const until = <T>(fn: () => Promise<T | undefined>, what: string): Promise<T> => waitFor(what, fn, 8000, 50);

const read = (p: string) => readFile(p, 'utf8');
const hostsToml = (addr: string, server = 'https://quay.io') =>
  `# Written by the mirror-synth node agent (mirror quay). Restored when the agent stops.\nserver = "${server}"\n\n[host."http://${addr}:5000"]\n  capabilities = ["pull", "resolve"]\n`;

describe('node agent', () => {
  it('writes hosts.toml pointing containerd at the resolved mirror address, upstream as fallback', async () => {
    const agent = await startAgent({});
    await agent.setAddress('10.96.0.42');
    const file = join(agent.certs, 'quay.io', 'hosts.toml');
    expect(await until(() => read(file), 'hosts.toml')).toBe(hostsToml('10.96.0.42'));
    expect(await readdir(join(agent.certs, 'quay.io'))).toEqual(['.mirror-synth-created', 'hosts.toml']);
  });

  it('uses MIRROR_ADDRESS as given, and brackets IPv6 addresses', async () => {
    const agent = await startAgent({ MIRROR_ADDRESS: 'fd00::42' });
    expect(await until(() => read(join(agent.certs, 'quay.io', 'hosts.toml')), 'hosts.toml')).toBe(
      hostsToml('[fd00::42]'),
    );
  });

  it('falls back to the Service env var Kubernetes injects when DNS has no answer', async () => {
    const agent = await startAgent({
      SERVICE_HOST_VAR: 'REGISTRY_MIRROR_QUAY_SERVICE_HOST',
      REGISTRY_MIRROR_QUAY_SERVICE_HOST: '10.0.0.7',
    });
    expect(await until(() => read(join(agent.certs, 'quay.io', 'hosts.toml')), 'hosts.toml')).toBe(
      hostsToml('10.0.0.7'),
    );
  });

  it('waits without writing while the address cannot be resolved', async () => {
    const agent = await startAgent({});
    await until(() => Promise.resolve(agent.logs().includes('cannot resolve') ? true : undefined), 'a resolve warning');
    expect(await readdir(agent.certs)).toEqual([]);
  });

  it('re-resolves periodically and replaces the file atomically when the address changes', async () => {
    const agent = await startAgent({ HOSTS: 'quay.io local.quay.io' });
    await agent.setAddress('10.96.0.1');
    const file = join(agent.certs, 'local.quay.io', 'hosts.toml');
    await until(async () => ((await read(file)) === hostsToml('10.96.0.1') ? true : undefined), 'first address');
    await agent.setAddress('10.96.0.2');
    await until(async () => ((await read(file)) === hostsToml('10.96.0.2') ? true : undefined), 'second address');
    expect(await read(join(agent.certs, 'quay.io', 'hosts.toml'))).toBe(hostsToml('10.96.0.2'));
    // No temp files are left behind.
    expect((await readdir(join(agent.certs, 'local.quay.io'))).filter((f) => f.includes('tmp'))).toEqual([]);
  });

  it('backs up a hosts.toml it did not write and restores it on SIGTERM', async () => {
    const original =
      'server = "https://quay.io"\n\n[host."https://other-mirror.example.com"]\n  capabilities = ["pull"]\n';
    const agent = await startAgent({}, async (certs) => {
      await mkdir(join(certs, 'quay.io'));
      await writeFile(join(certs, 'quay.io', 'hosts.toml'), original);
      await mkdir(join(certs, 'ghcr.io'));
      await writeFile(join(certs, 'ghcr.io', 'hosts.toml'), 'server = "https://ghcr.io"\n');
    });
    await agent.setAddress('10.96.0.42');
    const file = join(agent.certs, 'quay.io', 'hosts.toml');
    await until(async () => ((await read(file)) === hostsToml('10.96.0.42') ? true : undefined), 'hosts.toml');
    expect(await read(join(agent.certs, 'quay.io', 'hosts.toml.mirror-synth-backup'))).toBe(original);
    expect(await agent.stop()).toBe(0);
    expect(await read(file)).toBe(original);
    expect(await readdir(join(agent.certs, 'quay.io'))).toEqual(['hosts.toml']);
    expect(await read(join(agent.certs, 'ghcr.io', 'hosts.toml'))).toBe('server = "https://ghcr.io"\n');
  });

  it('keeps the first backup when restarted after a hard kill, then restores the original', async () => {
    const original = 'server = "https://quay.io"\n';
    const prepare = async (certs: string) => {
      await mkdir(join(certs, 'quay.io'));
      await writeFile(join(certs, 'quay.io', 'hosts.toml'), original);
    };
    const first = await startAgent({ MIRROR_ADDRESS: '10.0.0.1' }, prepare);
    const file = join(first.certs, 'quay.io', 'hosts.toml');
    await until(async () => ((await read(file)) === hostsToml('10.0.0.1') ? true : undefined), 'hosts.toml');
    first.proc.kill('SIGKILL');
    // A new agent on the same node (same certs dir) must not take our own file for the original.
    const second = spawn('sh', [join(first.root, 'node-agent.sh')], {
      env: {
        PATH: process.env.PATH,
        CERTS_DIR: first.certs,
        HOSTS: 'quay.io',
        SERVER_URL: 'https://quay.io',
        MIRROR_ADDRESS: '10.0.0.2',
        RESOLVE_INTERVAL: '1',
        MIRROR_NAME: 'quay',
      },
      stdio: 'ignore',
    });
    running.push(second);
    await until(async () => ((await read(file)) === hostsToml('10.0.0.2') ? true : undefined), 'rewritten hosts.toml');
    await new Promise<void>((resolve) => {
      second.once('exit', () => resolve());
      second.kill('SIGTERM');
    });
    expect(await read(file)).toBe(original);
  });

  it('removes what it created, leaving the directory as it found it', async () => {
    const agent = await startAgent({ MIRROR_ADDRESS: '10.0.0.1', HOSTS: 'quay.io local.quay.io' });
    await until(() => read(join(agent.certs, 'local.quay.io', 'hosts.toml')), 'hosts.toml');
    expect(await agent.stop()).toBe(0);
    expect(await readdir(agent.certs)).toEqual([]);
  });

  it('fails clearly when certs.d is not mounted', async () => {
    const agent = await startAgent({ CERTS_DIR: '/nonexistent/certs.d' });
    const code = await new Promise((resolve) => agent.proc.once('exit', resolve));
    expect(code).toBe(1);
    expect(agent.logs()).toContain('/nonexistent/certs.d does not exist');
  });
});

const BUSYBOX = ['/usr/bin/busybox', '/bin/busybox'].find((p) => existsSync(p));
const hasBusybox = BUSYBOX !== undefined;

// The DaemonSet runs busybox, which has no getent: the agent resolves through busybox's own
// nslookup, here against a DNS server on loopback, with every command a busybox applet.
describe.runIf(hasBusybox)('node agent under busybox, as in its image', { timeout: 20_000 }, () => {
  it('resolves the Service through nslookup, follows address changes and restores on SIGTERM', async () => {
    const dns = await startDns(0);
    try {
      const name = 'registry-mirror-quay.kube-extra.svc.cluster.local';
      dns.set(name, '10.96.0.42');
      const agent = await startAgent({ SERVICE_NAME: name }, undefined, { dnsPort: dns.port });
      const file = join(agent.certs, 'quay.io', 'hosts.toml');
      await until(async () => ((await read(file)) === hostsToml('10.96.0.42') ? true : undefined), 'hosts.toml');
      dns.set(name, '10.96.0.43');
      await until(async () => ((await read(file)) === hostsToml('10.96.0.43') ? true : undefined), 'the new address');
      expect(await agent.stop()).toBe(0);
      expect(await readdir(agent.certs)).toEqual([]);
    } finally {
      await dns.close();
    }
  });

  it('waits while the name does not resolve', async () => {
    const dns = await startDns(0);
    try {
      const agent = await startAgent({ SERVICE_NAME: 'registry-mirror-none.kube-extra.svc.cluster.local' }, undefined, {
        dnsPort: dns.port,
      });
      await until(
        () => Promise.resolve(agent.logs().includes('cannot resolve') ? true : undefined),
        'a resolve warning',
      );
      expect(await readdir(agent.certs)).toEqual([]);
    } finally {
      await dns.close();
    }
  });
});
