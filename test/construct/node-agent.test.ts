import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import { NODE_RUNTIMES } from '../../src/api/names.js';
import { nodeAgentScript } from '../../src/construct/assets.js';
import { NODE_CONFIG_DIRS } from '../../src/construct/node-agent.js';
import { synthesizeMirror } from '../../src/synth/chart.js';

const NODE_AGENT_SCRIPT = nodeAgentScript();
import { startDns } from '../support/primitives/dns.js';
import { waitFor } from '../support/primitives/wait.js';

interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
}
interface AgentContainer {
  env: { name: string; value?: string }[];
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext: Record<string, unknown>;
}
interface AgentPodSpec {
  volumes: Volume[];
  containers: AgentContainer[];
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
}

function agentPod(runtime?: (typeof NODE_RUNTIMES)[number]): AgentPodSpec {
  const objects = synthesizeMirror(
    { name: 'quay', spec: { upstreamUrl: 'quay.io', masqueradeUrl: 'local.quay.io' }, source: 'test' },
    runtime ? { nodeRuntime: runtime } : {},
  );
  const ds = objects.find((o) => o.kind === 'DaemonSet') as unknown as { spec: { template: { spec: AgentPodSpec } } };
  return ds.spec.template.spec;
}

describe('NodeAgent construct, for each node runtime', () => {
  it('defaults to containerd', () => {
    expect(agentPod()).toEqual(agentPod('containerd'));
  });

  it.each(NODE_RUNTIMES)('%s: mounts exactly one host directory, unprivileged, with no capabilities', (runtime) => {
    const pod = agentPod(runtime);
    const hostPaths = pod.volumes.filter((v) => v.hostPath);
    expect(hostPaths.map((v) => v.hostPath)).toEqual([{ path: NODE_CONFIG_DIRS[runtime], type: 'DirectoryOrCreate' }]);
    const [c] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    const env = Object.fromEntries(c.env.map((e) => [e.name, e.value]));
    // the script writes where the host directory is mounted
    const mount = c.volumeMounts.find((m) => m.name === hostPaths[0].name);
    expect(mount?.mountPath).toBe(`/host${NODE_CONFIG_DIRS[runtime]}`);
    expect(env.CONFIG_DIR).toBe(mount?.mountPath);
    expect(env.NODE_RUNTIME).toBe(runtime);
    expect(env.HOSTS).toBe('quay.io local.quay.io');
    expect(c.securityContext).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(c.securityContext).not.toHaveProperty('capabilities.add');
    expect([pod.hostNetwork, pod.hostPID, pod.hostIPC]).toEqual([undefined, undefined, undefined]);
  });

  it('tells the agent spec.pullFromMirror, all unless set', () => {
    const env = (spec: Record<string, unknown>) => {
      const objects = synthesizeMirror({ name: 'quay', spec: { upstreamUrl: 'quay.io', ...spec }, source: 'test' }, {});
      const ds = objects.find((o) => o.kind === 'DaemonSet') as unknown as {
        spec: { template: { spec: AgentPodSpec } };
      };
      return Object.fromEntries(ds.spec.template.spec.containers[0].env.map((e) => [e.name, e.value]));
    };
    expect(env({}).PULL_FROM_MIRROR).toBe('all');
    expect(env({ pullFromMirror: 'digest-only' }).PULL_FROM_MIRROR).toBe('digest-only');
  });

  it('k3s and RKE2 get their own certs.d, CRI-O its registries.conf.d', () => {
    expect(NODE_CONFIG_DIRS).toEqual({
      containerd: '/etc/containerd/certs.d',
      k3s: '/var/lib/rancher/k3s/agent/etc/containerd/certs.d',
      rke2: '/var/lib/rancher/rke2/agent/etc/containerd/certs.d',
      'cri-o': '/etc/containers/registries.conf.d',
    });
  });
});

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
  /** Exit code once the script has exited, else undefined. */
  exitCode: () => number | null | undefined;
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
      CONFIG_DIR: certs,
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
  let exitCode: number | null | undefined;
  proc.once('exit', (code) => (exitCode = code));
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  return {
    proc,
    certs,
    root,
    logs: () => out,
    exitCode: () => exitCode,
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
        CONFIG_DIR: first.certs,
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

  it('with PULL_FROM_MIRROR=digest-only grants the mirror pull only: tags are resolved at the upstream', async () => {
    const agent = await startAgent({ PULL_FROM_MIRROR: 'digest-only', MIRROR_ADDRESS: '10.96.0.42' });
    expect(await until(() => read(join(agent.certs, 'quay.io', 'hosts.toml')), 'hosts.toml')).toBe(
      hostsToml('10.96.0.42').replace('["pull", "resolve"]', '["pull"]'),
    );
  });

  it('refuses a PULL_FROM_MIRROR it does not know', async () => {
    const agent = await startAgent({ PULL_FROM_MIRROR: 'tag-only', MIRROR_ADDRESS: '10.96.0.42' });
    expect(await exitOf(agent)).toBe(1);
    expect(agent.logs()).toContain("PULL_FROM_MIRROR must be all or digest-only; got 'tag-only'");
    expect(await readdir(agent.certs)).toEqual([]);
  });

  it('fails clearly when certs.d is not mounted', async () => {
    const agent = await startAgent({ CONFIG_DIR: '/nonexistent/certs.d' });
    const code = await new Promise((resolve) => agent.proc.once('exit', resolve));
    expect(code).toBe(1);
    expect(agent.logs()).toContain('/nonexistent/certs.d does not exist');
  });
});

/** Wait for the script to exit; its exit code. */
const exitOf = (agent: Agent): Promise<number | null> =>
  until(
    () => Promise.resolve(agent.exitCode() === undefined ? undefined : { code: agent.exitCode() }),
    'the agent to exit',
  ).then((e) => e.code ?? null);

describe('node agent: what it refuses to use', () => {
  it('runs no command hidden in SERVICE_HOST_VAR, which it evaluates only as a plain variable name', async () => {
    const root = await mkdtemp(join(tmpdir(), 'node-agent-eval-'));
    const marker = join(root, 'injected');
    const agent = await startAgent({ SERVICE_HOST_VAR: `PATH:-}"; touch ${marker}; : "\${PATH` });
    // Before the fix the agent kept running and ran `touch` on its first look-up.
    await until(
      () => Promise.resolve(existsSync(marker) || agent.exitCode() !== undefined ? true : undefined),
      'the agent to exit or run the command',
    );
    expect(existsSync(marker)).toBe(false);
    expect(await exitOf(agent)).toBe(1);
    expect(agent.logs()).toContain('SERVICE_HOST_VAR must be an environment variable name');
  });

  it('still reads a well-formed SERVICE_HOST_VAR', async () => {
    const agent = await startAgent({ SERVICE_HOST_VAR: 'MIRROR_SVC_HOST_2', MIRROR_SVC_HOST_2: '10.0.0.9' });
    expect(await until(() => read(join(agent.certs, 'quay.io', 'hosts.toml')), 'hosts.toml')).toBe(
      hostsToml('10.0.0.9'),
    );
  });

  it.each([
    ['HOSTS', '../../etc', "HOSTS: '../../etc' is not a registry host"],
    ['HOSTS', 'quay.io/evil', "HOSTS: 'quay.io/evil' is not a registry host"],
    ['SERVER_URL', 'https://quay.io"\n[host."http://evil', 'SERVER_URL must be https://<host>[:port]'],
    ['MIRROR_NAME', '../quay', 'MIRROR_NAME must be a Kubernetes object name'],
    ['NODE_RUNTIME', 'docker', 'NODE_RUNTIME must be one of containerd, k3s, rke2, cri-o'],
    ['SERVICE_PORT', '5000; rm', 'SERVICE_PORT must be a port number'],
  ])('refuses %s=%j and writes nothing', async (name, value, message) => {
    const agent = await startAgent({ [name]: value, MIRROR_ADDRESS: '10.0.0.1' });
    expect(await exitOf(agent)).toBe(1);
    expect(agent.logs()).toContain(message);
    expect(await readdir(agent.certs)).toEqual([]);
  });

  it('ignores a looked-up address that is not one, rather than writing it into TOML', async () => {
    const agent = await startAgent({});
    await agent.setAddress('10.0.0.1"]\n[host."http://evil');
    await until(
      () => Promise.resolve(agent.logs().includes('ignoring the mirror address') ? true : undefined),
      'the refusal',
    );
    expect(await readdir(agent.certs)).toEqual([]);
  });
});

const dropIn = (addr: string, hosts: readonly string[], location = 'quay.io') =>
  '# Written by the mirror-synth node agent (mirror quay). Restored when the agent stops.\n' +
  hosts
    .map(
      (h) =>
        `\n[[registry]]\nprefix = "${h}"\nlocation = "${location}"\n\n[[registry.mirror]]\nlocation = "${addr}:5000"\ninsecure = true\n`,
    )
    .join('');

describe('node agent for CRI-O: a registries.conf.d drop-in', () => {
  it('writes one drop-in for every host, the upstream as location, the mirror first', async () => {
    const agent = await startAgent({ NODE_RUNTIME: 'cri-o', HOSTS: 'quay.io local.quay.io' });
    await agent.setAddress('10.96.0.42');
    const file = join(agent.certs, '50-mirror-synth-quay.conf');
    expect(await until(() => read(file), 'the drop-in')).toBe(dropIn('10.96.0.42', ['quay.io', 'local.quay.io']));
    expect(await readdir(agent.certs)).toEqual(['50-mirror-synth-quay.conf']);
    await agent.setAddress('fd00::42');
    await until(
      async () => ((await read(file)) === dropIn('[fd00::42]', ['quay.io', 'local.quay.io']) ? true : undefined),
      'the new address',
    );
    expect(await agent.stop()).toBe(0);
    expect(await readdir(agent.certs)).toEqual([]);
  });

  it('with PULL_FROM_MIRROR=digest-only uses the mirror for pulls by digest only', async () => {
    const agent = await startAgent({
      NODE_RUNTIME: 'cri-o',
      HOSTS: 'quay.io local.quay.io',
      MIRROR_ADDRESS: '10.96.0.42',
      PULL_FROM_MIRROR: 'digest-only',
    });
    const file = join(agent.certs, '50-mirror-synth-quay.conf');
    expect(await until(() => read(file), 'the drop-in')).toBe(
      dropIn('10.96.0.42', ['quay.io', 'local.quay.io']).replace(
        /insecure = true\n/g,
        'insecure = true\npull-from-mirror = "digest-only"\n',
      ),
    );
  });

  it('keeps a same-named file it did not write, leaves other drop-ins alone, and restores the directory', async () => {
    const foreign = '[[registry]]\nprefix = "quay.io"\nlocation = "quay.example.com"\n';
    const agent = await startAgent({ NODE_RUNTIME: 'cri-o', MIRROR_ADDRESS: '10.0.0.1' }, async (dir) => {
      await writeFile(join(dir, '50-mirror-synth-quay.conf'), foreign);
      await writeFile(join(dir, '10-site.conf'), 'unqualified-search-registries = ["quay.io"]\n');
    });
    const before = {
      '50-mirror-synth-quay.conf': foreign,
      '10-site.conf': await read(join(agent.certs, '10-site.conf')),
    };
    const file = join(agent.certs, '50-mirror-synth-quay.conf');
    await until(async () => ((await read(file)) === dropIn('10.0.0.1', ['quay.io']) ? true : undefined), 'the drop-in');
    // the backup's name does not end in .conf, so containers/image never loads it
    expect(await read(`${file}.mirror-synth-backup`)).toBe(foreign);
    expect(await agent.stop()).toBe(0);
    const after: Record<string, string> = {};
    for (const f of await readdir(agent.certs)) after[f] = await read(join(agent.certs, f));
    expect(after).toEqual(before);
  });
});

describe('node agent for k3s and RKE2: their certs.d is regenerated when the service restarts', () => {
  const k3sHosts =
    '# File generated by k3s. DO NOT EDIT.\nserver = "https://quay.io"\n\n[host."https://registry.example.com/v2"]\n  capabilities = ["pull", "resolve"]\n';

  it.each(['k3s', 'rke2'])(
    '%s: rewrites within its interval, and restores what the service wrote last',
    async (runtime) => {
      const agent = await startAgent({
        NODE_RUNTIME: runtime,
        MIRROR_ADDRESS: '10.0.0.1',
        HOSTS: 'quay.io local.quay.io',
      });
      const file = join(agent.certs, 'quay.io', 'hosts.toml');
      await until(
        async () => ((await read(file).catch(() => '')) === hostsToml('10.0.0.1') ? true : undefined),
        'hosts.toml',
      );
      await until(() => read(join(agent.certs, 'local.quay.io', 'hosts.toml')), 'the second host');
      // What k3s does on restart: remove the host dirs it manages or is about to write, write its own.
      await rm(join(agent.certs, 'quay.io'), { recursive: true });
      await rm(join(agent.certs, 'local.quay.io'), { recursive: true });
      await mkdir(join(agent.certs, 'quay.io'), { mode: 0o700 });
      await writeFile(join(agent.certs, 'quay.io', 'hosts.toml'), k3sHosts);
      await until(async () => ((await read(file)) === hostsToml('10.0.0.1') ? true : undefined), 'the rewrite');
      await until(() => read(join(agent.certs, 'local.quay.io', 'hosts.toml')), 'the second host again');
      expect(await read(`${file}.mirror-synth-backup`)).toBe(k3sHosts);
      expect(await agent.stop()).toBe(0);
      expect(await readdir(agent.certs)).toEqual(['quay.io']);
      expect(await readdir(join(agent.certs, 'quay.io'))).toEqual(['hosts.toml']);
      expect(await read(file)).toBe(k3sHosts);
    },
  );
});

/** Whether this process may make a mount namespace with a bind mount (root, as in CI). */
function canBindMount(): boolean {
  try {
    execFileSync('unshare', ['-m', 'sh', '-c', 'mount --bind / /mnt'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

// k3s and RKE2 before v1.28.14/v1.29.9/v1.30.5/v1.31.1 remove the whole certs.d on every start
// and make it anew: the pod's bind mount then points at a deleted directory, where nothing
// written reaches containerd (and nothing can be created). The agent must exit so the kubelet
// restarts it with a mount of the new directory.
describe.runIf(canBindMount())('node agent with its directory bind-mounted, as in the pod', () => {
  it('exits within its interval when the node removes the mounted directory and makes it anew', async () => {
    const root = await mkdtemp(join(tmpdir(), 'node-agent-mount-'));
    const host = join(root, 'host', 'certs.d');
    const mnt = join(root, 'pod', 'certs.d');
    await mkdir(host, { recursive: true });
    await mkdir(mnt, { recursive: true });
    const script = join(root, 'node-agent.sh');
    await writeFile(script, NODE_AGENT_SCRIPT);
    const proc = spawn('unshare', ['-m', 'sh', '-c', 'mount --bind "$0" "$1" && exec sh "$2"', host, mnt, script], {
      env: {
        PATH: process.env.PATH,
        NODE_RUNTIME: 'k3s',
        CONFIG_DIR: mnt,
        HOSTS: 'quay.io',
        SERVER_URL: 'https://quay.io',
        MIRROR_ADDRESS: '10.0.0.1',
        RESOLVE_INTERVAL: '1',
        MIRROR_NAME: 'quay',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(proc);
    let out = '';
    proc.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', resolve));
    await until(() => read(join(host, 'quay.io', 'hosts.toml')), 'hosts.toml through the mount');
    await rm(host, { recursive: true });
    await mkdir(host);
    expect(await exited).toBe(3);
    expect(out).toContain('was removed from the node; exiting so the container restarts');
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
