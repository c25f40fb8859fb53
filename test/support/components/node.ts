// A real Kubernetes cluster for the e2e tests, of one node or several: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, and on each node kubelet, kube-proxy (iptables),
// containerd 2.x's CRI and the CNI bridge, with CoreDNS; all built from their Go modules (tools/)
// and run inside network namespaces of the test's own with no route out. The test process reaches
// the API server (and any port it forwards) on 127.0.0.1 through a Unix socket bridge; nothing
// here sends a packet outside those namespaces.
//
// How a node is put together (what this machine kind needs is written up in CONTRIBUTING.md,
// "The real-node cluster"):
// - Each node's network namespace holds the node IP on a veth, a device route for the Service
//   range (or a connect() to a ClusterIP fails before kube-proxy's DNAT), and the CNI bridge for
//   its own Pod range. One node: both ends of the veth are in its namespace. Several: the other
//   end is on a bridge in a fabric namespace of the cluster's own (no address, no route), and
//   each node routes every other node's Pod range via that node's IP.
// - One holder process per node joins its network namespace in a mount namespace of its own
//   (propagation slave) and mounts, only there, tmpfs or test directories over the host paths
//   that kubelet, containerd and libcni use whatever they are told (/run/containerd,
//   /var/lib/kubelet, /var/lib/cni, /var/log/containers, /etc/containerd), a resolv.conf and hosts
//   of the node's, and files over the /proc/sys knobs kubelet would set host-wide. Every process
//   of the node joins both namespaces with nsenter, so its mounts are seen by the others and none
//   reach the host or another node.
// - kubelet runs on cgroup v1 (failCgroupV1: false) under a cgroup root of the node's own.
// - The control plane and CoreDNS run on the first node (startControlPlane), the rest on every
//   node (openNode, startContainerd, startNodeAgents).
// - stop() kills everything by PID, by cgroup and by namespace, deletes the namespaces (every
//   interface and iptables rule in them goes with them) and removes the cgroup and mount-point
//   directories it made, so the host is as it was.
import { type ChildProcess, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, readFile, readlink, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import { forgetOnExit, hasExited, removeOnExit, spawnTracked, tail, terminate } from '../primitives/processes.js';
import { ensureTool, type ToolName } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';

const execFileAsync = promisify(execFile);

/**
 * The first node's addresses (the one-node cluster's); node i is 10.213.0.(i+2) with Pods in
 * 10.214.i.0/24 (nodeAddresses). The same in every cluster, since each lives in namespaces of its own.
 */
export const NODE_NETWORK = {
  nodeIp: '10.213.0.2',
  nodePrefix: 24,
  podCidr: '10.214.0.0/24',
  /** Every node's Pod range together. */
  clusterPodCidr: '10.214.0.0/16',
  serviceCidr: '10.215.0.0/24',
  /** The ClusterIP of the `kubernetes` Service (the first of the Service range). */
  apiServiceIp: '10.215.0.1',
  clusterDomain: 'cluster.local',
} as const;

export interface NodeClusterOptions {
  /** How many nodes: each its own kubelet, containerd and kube-proxy, the first also the control plane. @default 1 */
  readonly nodes?: number;
  /** Progress lines. @default - written to stderr */
  readonly log?: (line: string) => void;
  /** Keep the node's directory (logs, configs) after stop(). @default - MIRROR_SYNTH_KEEP_NODE is set */
  readonly keep?: boolean;
  /**
   * Host names the cluster DNS (and the node's /etc/hosts) resolve to the node IP, for servers a
   * test runs on the node, e.g. an upstream registry. Pods and the node's containerd reach them
   * by name.
   */
  readonly hostNames?: readonly string[];
  /**
   * Called once each node's containerd serves its socket and before kubelet starts, to import the
   * images Pods will run (the sandbox image among them) into the `k8s.io` namespace. `root` is the
   * node's directory.
   */
  readonly images?: (node: { ctr: string; address: string; caPem: string; root: string }) => Promise<unknown>;
  /** The sandbox ("pause") image containerd runs for every Pod; it must be imported by `images`. */
  readonly sandboxImage: string;
  /** hostPath PersistentVolumes made ready for claims to bind to (no provisioner runs). @default 4 */
  readonly persistentVolumes?: number;
}

/** One node of the cluster. */
export interface ClusterNode {
  readonly name: string;
  readonly ip: string;
  /** The node's Pod range (its CNI host-local range). */
  readonly podCidr: string;
  /** The network namespace (`ip netns`) the node lives in. */
  readonly netns: string;
  /** kubelet's cgroup root, in every hierarchy under /sys/fs/cgroup. */
  readonly cgroupRoot: string;
  /** The node's directory: configs, logs, containerd's root. */
  readonly root: string;
  readonly logDir: string;
  /** The node's containerd: its socket and the ctr that speaks to it. */
  readonly containerd: { readonly address: string; readonly ctr: string };
  /** The host path behind the node's /etc/containerd/certs.d (containerd's registry config_path). */
  readonly certsDir: string;
  /** Run a command on the node (its mount and network namespaces) to completion. */
  readonly run: (
    file: string,
    args: readonly string[],
    env?: NodeJS.ProcessEnv,
  ) => Promise<{ stdout: string; stderr: string }>;
  /** Start a long-running process on the node, logging to `<logDir>/<name>.log`; stop() stops it. */
  readonly spawn: (name: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv) => ChildProcess;
  /** A 127.0.0.1 port on the host that reaches `port` on the node IP. */
  readonly forward: (port: number) => Promise<number>;
  /** The processes of the node's containers (found by kubelet's cgroups), with their command lines. */
  readonly containerProcesses: () => Promise<{ pid: number; argv: string[] }[]>;
  /** ctr against the node's containerd, in the `k8s.io` namespace (the CRI's). */
  readonly ctr: (args: readonly string[]) => Promise<string>;
}

/** The cluster. Its node fields (nodeName to ctr) are the first node's, where the control plane runs. */
export interface NodeCluster {
  /** Every node, the first one first. */
  readonly nodes: readonly ClusterNode[];
  readonly nodeName: string;
  /** The network namespace (`ip netns`) the node lives in. */
  readonly netns: string;
  /** kubelet's cgroup root, in every hierarchy under /sys/fs/cgroup. */
  readonly cgroupRoot: string;
  readonly nodeIp: string;
  /** The cluster's directory (the first node's): configs, logs, containerd's root, the PersistentVolumes. */
  readonly root: string;
  readonly logDir: string;
  /** An admin (system:masters) kubeconfig for the test process: the API server through 127.0.0.1. */
  readonly kubeconfigPath: string;
  readonly server: string;
  /** The cluster's CA (PEM file), which also signs the test servers' certificates. */
  readonly caCert: string;
  /** The node's containerd: its socket and the ctr that speaks to it. */
  readonly containerd: { readonly address: string; readonly ctr: string };
  /** The host path behind the node's /etc/containerd/certs.d (containerd's registry config_path). */
  readonly certsDir: string;
  /** A serving certificate signed by the cluster CA for these DNS names and IPs. */
  serverCert(name: string, sans: readonly string[]): Promise<{ cert: string; key: string }>;
  /** Run a command on the node (its mount and network namespaces) to completion. */
  run(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string }>;
  /** Start a long-running process on the node, logging to `<logDir>/<name>.log`; stop() stops it. */
  spawn(name: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** A 127.0.0.1 port on the host that reaches `port` on the node IP (e.g. to push to an upstream). */
  forward(port: number): Promise<number>;
  /** The processes of the node's containers (found by kubelet's cgroups), with their command lines. */
  containerProcesses(): Promise<{ pid: number; argv: string[] }[]>;
  /** ctr against the node's containerd, in the `k8s.io` namespace (the CRI's). */
  ctr(args: readonly string[]): Promise<string>;
  /** Stop everything and leave the host as it was. Safe to call twice. */
  stop(): Promise<void>;
}

const tools = [
  'etcd',
  'kube-apiserver',
  'kube-controller-manager',
  'kube-scheduler',
  'kubelet',
  'kube-proxy',
  'containerd',
  'ctr',
  'containerd-shim-runc-v2',
  'cni-bridge',
  'cni-host-local',
  'cni-loopback',
  'cni-portmap',
  'coredns',
] as const satisfies readonly ToolName[];

/** Host commands the node needs, each with the Debian package that has it. */
const hostCommands: Record<string, string> = {
  ip: 'iproute2',
  nsenter: 'util-linux',
  unshare: 'util-linux',
  mount: 'mount',
  iptables: 'iptables',
  runc: 'runc',
  openssl: 'openssl',
  socat: 'socat',
  conntrack: 'conntrack',
};

/**
 * Why this host cannot run the node, or undefined when it can: a root user, the commands above,
 * cgroup v1 hierarchies and the bridge netfilter hook. Tests skip with this message.
 */
export async function nodeClusterUnavailable(): Promise<string | undefined> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network and mount namespaces, cgroups)');
  for (const [command, pkg] of Object.entries(hostCommands)) {
    const found = await execFileAsync('sh', ['-c', `command -v ${command}`]).then(
      () => true,
      () => false,
    );
    if (!found) missing.push(`${command} (Debian package ${pkg})`);
  }
  const hierarchies = await cgroupHierarchies().catch(() => []);
  for (const controller of ['cpu', 'cpuset', 'memory', 'pids']) {
    if (!hierarchies.some((h) => h.controllers.includes(controller))) {
      missing.push(`a cgroup v1 '${controller}' hierarchy under /sys/fs/cgroup`);
    }
  }
  if (!existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
    missing.push('the br_netfilter kernel module (/proc/sys/net/bridge/bridge-nf-call-iptables)');
  }
  return missing.length > 0 ? `this host cannot run the real-node cluster; missing: ${missing.join('; ')}` : undefined;
}

interface Hierarchy {
  readonly path: string;
  readonly controllers: readonly string[];
}

/** The cgroup hierarchies mounted under /sys/fs/cgroup (named ones like name=systemd and the unified one included). */
async function cgroupHierarchies(): Promise<Hierarchy[]> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  const found: Hierarchy[] = [];
  for (const line of mounts.split('\n')) {
    const [, path, type, options] = line.split(' ');
    // the hybrid layout's cgroup2 ("unified") too: kubelet makes its directories there as well
    if ((type !== 'cgroup' && type !== 'cgroup2') || !path?.startsWith('/sys/fs/cgroup/')) continue;
    const controllers = options
      .split(',')
      .filter((o) => !['rw', 'ro', 'nosuid', 'nodev', 'noexec', 'relatime'].includes(o));
    found.push({ path, controllers });
  }
  return found;
}

/** The kernel tunables kubelet sets unless they already hold its values (pkg/kubelet/cm, setupKernelTunables). */
const kubeletSysctls: Record<string, string> = {
  'vm/overcommit_memory': '1',
  'vm/panic_on_oom': '0',
  'kernel/panic': '10',
  'kernel/panic_on_oops': '1',
  'kernel/keys/root_maxkeys': '1000000',
  'kernel/keys/root_maxbytes': '25000000',
};

/** Host directories kubelet, containerd and libcni use whatever their configuration says. */
const shadowedDirs = [
  '/run/containerd',
  '/var/lib/cni',
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/etc/containerd',
];

/** What the cluster knows of one node before it starts: its names and addresses. */
interface NodeSpec {
  readonly index: number;
  readonly name: string;
  readonly netns: string;
  readonly cgroupRoot: string;
  /** The node's directory (the cluster's own for the first node, a folder of it for the others). */
  readonly root: string;
  readonly ip: string;
  readonly podCidr: string;
}

/** A node as the cluster drives it: a ClusterNode plus what only this file uses. */
interface NodeHost extends ClusterNode {
  /** Wait until `check` holds, failing at once with the log's tail if process `name` exits. */
  readonly ready: (name: string, check: () => Promise<boolean>, timeoutMs?: number) => Promise<void>;
  /** Stop everything on the node and delete its namespaces and cgroups. Safe to call twice. */
  readonly stop: () => Promise<void>;
}

/** What the nodes share: the binaries, the CA and the component identities' tokens. */
interface ClusterContext {
  readonly bin: Record<(typeof tools)[number], string>;
  readonly ca: Ca;
  readonly caPem: string;
  readonly pkiDir: string;
  readonly tokens: Readonly<Record<string, string>>;
  /** https://<first node's IP>:6443, as the components on the nodes reach the API server. */
  readonly nodeServer: string;
  /** The fabric namespace the nodes' veths join, when there are several nodes. */
  readonly fabric: string | undefined;
  readonly specs: readonly NodeSpec[];
  readonly hostNames: readonly string[];
  readonly sandboxImage: string;
  readonly log: (line: string) => void;
}

/** Node `index`'s addresses: the first is 10.213.0.2 with Pods in 10.214.0.0/24, the next 10.213.0.3 with 10.214.1.0/24, ... */
export function nodeAddresses(index: number): { readonly ip: string; readonly podCidr: string } {
  return { ip: `10.213.0.${index + 2}`, podCidr: `10.214.${index}.0/24` };
}

/** The most nodes one cluster may have (the node range is a /24, and the Pod ranges /24s of a /16). */
export const MAX_NODES = 32;

export async function startNodeCluster(opts: NodeClusterOptions): Promise<NodeCluster> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[node] ${line}\n`));
  const count = opts.nodes ?? 1;
  if (!Number.isInteger(count) || count < 1 || count > MAX_NODES) {
    throw new Error(`nodes must be an integer from 1 to ${MAX_NODES}, got ${count}`);
  }
  const unavailable = await nodeClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  const started = Date.now();
  const bin = Object.fromEntries(
    await Promise.all(tools.map(async (t) => [t, await ensureTool(t)] as const)),
  ) as Record<(typeof tools)[number], string>;
  log(`tools ready in ${seconds(started)}`);

  const id = randomBytes(3).toString('hex');
  // short: Unix socket paths must stay under ~100 characters
  const root = await mkdtemp(`/tmp/ms-node-${id}-`);
  const keep = opts.keep ?? Boolean(process.env.MIRROR_SYNTH_KEEP_NODE);
  removeOnExit(root);
  // the first node keeps the one-node cluster's names and paths; node i adds `-i` and `n<i>/`
  const specs: NodeSpec[] = Array.from({ length: count }, (_, index) => {
    const suffix = index === 0 ? '' : `-${index}`;
    return {
      index,
      name: `node-${id}${suffix}`,
      netns: `ms-node-${id}${suffix}`,
      cgroupRoot: `/ms-node-${id}${suffix}`,
      root: index === 0 ? root : join(root, `n${index}`),
      ...nodeAddresses(index),
    };
  });
  const fabric = count > 1 ? `ms-node-${id}-fabric` : undefined;
  const nodes: NodeHost[] = [];
  const createdDirs: string[] = [];
  let fabricAdded = false;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const t0 = Date.now();
    await Promise.all(nodes.map((node) => node.stop()));
    if (fabricAdded && fabric) await deleteNetns(fabric, log);
    for (const dir of createdDirs.reverse()) await rmdir(dir).catch(() => undefined);
    if (keep) log(`kept ${root}`);
    else {
      await rm(root, { recursive: true, force: true });
      forgetOnExit(root);
    }
    log(`stopped in ${seconds(t0)}`);
  };

  try {
    // the host paths the nodes cover need a directory to mount on
    for (const dir of shadowedDirs) {
      if (!existsSync(dir)) {
        await mkdir(dir, { recursive: true });
        createdDirs.push(dir);
      }
    }
    if (fabric) {
      fabricAdded = true;
      await openFabric(fabric);
    }
    const ctx: ClusterContext = {
      bin,
      ...(await makePki(join(root, 'pki'), specs)),
      pkiDir: join(root, 'pki'),
      nodeServer: `https://${specs[0].ip}:6443`,
      fabric,
      specs,
      hostNames: opts.hostNames ?? [],
      sandboxImage: opts.sandboxImage,
      log,
    };
    await Promise.all(specs.map((spec) => openNode(spec, ctx, (node) => (nodes[spec.index] = node))));
    const [first] = nodes;

    // the control plane on the first node, beside every node's containerd and its images (the
    // first node's import alone, then the others': it may build the stand-ins' cache)
    const images = async (node: NodeHost): Promise<void> => {
      await opts.images?.({ ctr: bin.ctr, address: node.containerd.address, caPem: ctx.caPem, root: node.root });
    };
    const firstImages = startContainerd(first, ctx).then(() => images(first));
    const [controlPlane] = await Promise.all([
      startControlPlane(first, ctx, started),
      firstImages,
      ...nodes.slice(1).map(async (node) => {
        await Promise.all([startContainerd(node, ctx), firstImages.catch(() => undefined)]);
        await images(node);
      }),
    ]);
    log(`containerd ready with its images on ${count} node(s) in ${seconds(started)}`);
    const { server } = controlPlane;
    // each Node with its Pod range in spec.podCIDR, as kube-controller-manager's allocator gives it
    // on a real cluster: registered before its kubelet starts, which finds it and takes it over
    await Promise.all(nodes.map((node) => registerNode(server, ctx.tokens.admin, ctx.caPem, node)));
    for (const node of nodes) startNodeAgents(node, ctx);

    const cluster: NodeCluster = {
      nodes,
      nodeName: first.name,
      netns: first.netns,
      cgroupRoot: first.cgroupRoot,
      nodeIp: first.ip,
      root,
      logDir: first.logDir,
      kubeconfigPath: controlPlane.kubeconfigPath,
      server,
      caCert: ctx.ca.cert,
      containerd: first.containerd,
      certsDir: first.certsDir,
      serverCert: (name, sans) => signCert(ctx.ca, ctx.pkiDir, name, sans),
      run: first.run,
      spawn: first.spawn,
      forward: first.forward,
      containerProcesses: first.containerProcesses,
      ctr: first.ctr,
      stop,
    };
    const admin = ctx.tokens.admin;
    await Promise.all(
      nodes.map((node) => node.ready('kubelet', () => nodeReady(server, admin, ctx.caPem, node.name), 120_000)),
    );
    await first.ready('coredns', () => httpOkOnNode(first.run, `http://${first.ip}:8181/ready`), 60_000);
    // Pods are refused until the service account controller has made the namespace's account
    await waitFor(
      'the default ServiceAccount',
      async () =>
        (await apiRequest(server, admin, ctx.caPem, 'GET', '/api/v1/namespaces/default/serviceaccounts/default'))
          .status === 200
          ? true
          : undefined,
      60_000,
      200,
    );
    await createPersistentVolumes(server, admin, ctx.caPem, root, opts.persistentVolumes ?? 4);
    const names = nodes.map((n) => n.name).join(', ');
    log(`${count === 1 ? 'node' : `${count} nodes`} ${names} Ready in ${seconds(started)} (logs ${first.logDir})`);
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The CA, the API server's certificate, the service-account keys and a token for each component. */
async function makePki(
  dir: string,
  specs: readonly NodeSpec[],
): Promise<{ ca: Ca; caPem: string; tokens: Record<string, string> }> {
  await mkdir(dir, { recursive: true });
  const ca = await makeCa(dir);
  await signCert(ca, dir, 'kube-apiserver', [
    '127.0.0.1',
    specs[0].ip,
    NODE_NETWORK.apiServiceIp,
    'localhost',
    'kubernetes',
    'kubernetes.default',
    'kubernetes.default.svc',
    `kubernetes.default.svc.${NODE_NETWORK.clusterDomain}`,
  ]);
  await execFileAsync('openssl', ['genrsa', '-out', join(dir, 'sa.key'), '2048']);
  await execFileAsync('openssl', ['rsa', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub')]);
  const identities: Record<string, { user: string; groups: string[] }> = {
    admin: { user: 'admin', groups: ['system:masters'] },
    'kube-controller-manager': { user: 'system:kube-controller-manager', groups: [] },
    'kube-scheduler': { user: 'system:kube-scheduler', groups: [] },
    'kube-proxy': { user: 'system:kube-proxy', groups: [] },
    coredns: { user: 'admin', groups: ['system:masters'] },
  };
  // each kubelet as its own node, as the Node authorizer wants
  for (const spec of specs)
    identities[kubeletIdentity(spec)] = { user: `system:node:${spec.name}`, groups: ['system:nodes'] };
  const tokens: Record<string, string> = {};
  const lines: string[] = [];
  for (const [name, who] of Object.entries(identities)) {
    tokens[name] = randomBytes(24).toString('hex');
    lines.push(`${tokens[name]},${who.user},${name},"${who.groups.join(',')}"`);
  }
  await writeFile(join(dir, 'tokens.csv'), lines.join('\n') + '\n', { mode: 0o600 });
  return { ca, caPem: await readFile(ca.cert, 'utf8'), tokens };
}

function kubeletIdentity(spec: NodeSpec): string {
  return spec.index === 0 ? 'kubelet' : `kubelet-${spec.index}`;
}

/** The namespace the nodes' veths meet in: one bridge, no address, no route, nothing else. */
async function openFabric(fabric: string): Promise<void> {
  await ip('netns', 'add', fabric);
  await ip('-n', fabric, 'link', 'set', 'lo', 'up');
  await ip('-n', fabric, 'link', 'add', 'ms-fabric', 'type', 'bridge');
  await ip('-n', fabric, 'link', 'set', 'ms-fabric', 'up');
}

async function deleteNetns(netns: string, log: (line: string) => void): Promise<void> {
  await execFileAsync('ip', ['netns', 'del', netns]).catch((err: { stderr?: string }) =>
    log(`ip netns del ${netns}: ${err.stderr ?? 'failed'}`),
  );
  // `ip netns del` can leave the bind mount's file behind
  await rm(`/run/netns/${netns}`, { force: true }).catch(() => undefined);
}

/**
 * One node's namespaces, cgroups and files, up to its holder process: nothing runs on it yet.
 * `opened` gets the node as soon as it has something to undo, so the cluster's stop() covers a
 * node whose set-up failed half-way.
 */
async function openNode(spec: NodeSpec, ctx: ClusterContext, opened: (node: NodeHost) => void): Promise<NodeHost> {
  const { root, netns, name, cgroupRoot } = spec;
  const nodeIp = spec.ip;
  const dnsIp = ctx.specs[0].ip;
  const logDir = join(root, 'logs');
  const p = (...parts: string[]): string => join(root, ...parts);
  for (const dir of [
    'logs',
    'etc-containerd/certs.d',
    'cni/net.d',
    'cni/bin',
    'kubelet',
    'kubelet-plugins',
    'pod-logs',
    'containerd',
    'sysctl',
    'sockets',
  ]) {
    await mkdir(p(dir), { recursive: true });
  }

  const children = new Map<string, ChildProcess>();
  const servers: Server[] = [];
  const cgroupDirs: string[] = [];
  let netnsAdded = false;
  let holder: ChildProcess | undefined = undefined;
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const server of servers) server.close();
    // kubelet first, so it restarts nothing; then every container, then the rest
    await terminate(children.get('kubelet'), 5_000);
    await killCgroup(cgroupDirs);
    for (const [proc, child] of [...children].reverse()) if (proc !== 'kubelet') await terminate(child, 5_000);
    if (holder) await sweepNamespaces(holder);
    await terminate(holder, 2_000);
    if (netnsAdded) await deleteNetns(netns, ctx.log);
    await removeCgroups(cgroupDirs);
  };

  const inNode = (file: string, args: readonly string[]): [string, string[]] => [
    'nsenter',
    [`--target=${holder!.pid!}`, '--mount', '--net', '--', file, ...args],
  ];
  const spawnOnNode = (
    proc: string,
    file: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ): ChildProcess => {
    if (stopped) throw new Error(`node ${name} is stopped: not starting ${proc}`);
    if (children.has(proc)) throw new Error(`${proc} is already running on node ${name}`);
    const out = createWriteStream(join(logDir, `${proc}.log`), { flags: 'a' });
    const child = spawnTracked(...inNode(file, args), {
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // a session of its own: a signal to the test's group does not reach it
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    });
    child.stdout!.pipe(out, { end: false });
    child.stderr!.pipe(out, { end: false });
    child.on('close', () => {
      out.end();
      if (children.get(proc) === child) children.delete(proc);
    });
    children.set(proc, child);
    return child;
  };
  const runOnNode = async (
    file: string,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ stdout: string; stderr: string }> => {
    const [f, a] = inNode(file, args);
    return execFileAsync(f, a, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      maxBuffer: 64 * 1024 * 1024,
      timeout: 120_000,
    });
  };
  const ready = async (proc: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
    const child = children.get(proc);
    const logFile = join(logDir, `${proc}.log`);
    try {
      await waitFor(
        `${proc} on ${name} to be ready`,
        async () => {
          if (!child || hasExited(child))
            throw new StopWaiting(
              `${proc} on ${name} exited (${child?.signalCode ?? child?.exitCode}):\n${await tail(logFile)}`,
            );
          return (await check().catch(() => false)) ? true : undefined;
        },
        timeoutMs,
        200,
      );
    } catch (err) {
      if (err instanceof StopWaiting) throw new Error(err.message);
      throw new Error(`${(err as Error).message}:\n${await tail(logFile)}`);
    }
  };
  // a bridge from 127.0.0.1 on the host to a port on the node IP
  const forward = async (port: number): Promise<number> => {
    const sock = p('sockets', `${port}.sock`);
    if (!children.has(`forward-${port}`)) {
      spawnOnNode(`forward-${port}`, 'socat', [`UNIX-LISTEN:${sock},fork,mode=600`, `TCP:${nodeIp}:${port}`]);
      await waitFor(`the bridge to ${nodeIp}:${port}`, () => (existsSync(sock) ? true : undefined), 10_000, 50);
    }
    const server = createServer((client) => {
      const upstream = connect(sock);
      client.pipe(upstream).pipe(client);
      const close = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', close);
      upstream.on('error', close);
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    servers.push(server);
    return (server.address() as { port: number }).port;
  };
  const containerdSock = p('containerd', 'containerd.sock');
  // on the node: `ctr run` makes its stdio fifos under /run/containerd, the node's tmpfs
  const ctr = async (args: readonly string[]): Promise<string> => {
    const { stdout, stderr } = await runOnNode(ctx.bin.ctr, ['--address', containerdSock, '-n', 'k8s.io', ...args]);
    return stdout + stderr;
  };
  const node: NodeHost = {
    name,
    ip: nodeIp,
    podCidr: spec.podCidr,
    netns,
    cgroupRoot,
    root,
    logDir,
    containerd: { address: containerdSock, ctr: ctx.bin.ctr },
    certsDir: p('etc-containerd', 'certs.d'),
    run: runOnNode,
    spawn: spawnOnNode,
    forward,
    ctr,
    containerProcesses: async () => {
      const pids = new Set<number>();
      for (const dir of cgroupDirs) for (const pid of await cgroupPids(join(dir, 'kubepods'))) pids.add(pid);
      const found: { pid: number; argv: string[] }[] = [];
      for (const pid of pids) {
        const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
        if (cmdline) found.push({ pid, argv: cmdline.split('\0').filter(Boolean) });
      }
      return found;
    },
    ready,
    stop,
  };
  opened(node);

  // --- network namespace: the node IP on a veth, alone (one node) or with its peer on the fabric
  await ip('netns', 'add', netns);
  netnsAdded = true;
  await ip('-n', netns, 'link', 'set', 'lo', 'up');
  if (ctx.fabric) {
    const peer = `ms-n${spec.index}`;
    await ip('-n', netns, 'link', 'add', 'ms0', 'type', 'veth', 'peer', 'name', peer, 'netns', ctx.fabric);
    await ip('-n', ctx.fabric, 'link', 'set', peer, 'master', 'ms-fabric');
    await ip('-n', ctx.fabric, 'link', 'set', peer, 'up');
  } else {
    await ip('-n', netns, 'link', 'add', 'ms0', 'type', 'veth', 'peer', 'name', 'ms1');
    await ip('-n', netns, 'link', 'set', 'ms1', 'up');
  }
  await ip('-n', netns, 'addr', 'add', `${nodeIp}/${NODE_NETWORK.nodePrefix}`, 'dev', 'ms0');
  await ip('-n', netns, 'link', 'set', 'ms0', 'up');
  await ip('-n', netns, 'route', 'add', NODE_NETWORK.serviceCidr, 'dev', 'ms0');
  // every other node's Pods through that node
  for (const other of ctx.specs) {
    if (other.index !== spec.index) await ip('-n', netns, 'route', 'add', other.podCidr, 'via', other.ip, 'dev', 'ms0');
  }
  // per-namespace knobs; `ip netns exec` is fine for a one-shot command that mounts nothing
  await execFileAsync('ip', [
    'netns',
    'exec',
    netns,
    'sysctl',
    '-qw',
    'net.ipv4.ip_forward=1',
    'net.bridge.bridge-nf-call-iptables=1',
    'net.ipv4.conf.all.route_localnet=1',
  ]);

  // --- cgroups: kubelet's root, in every v1 hierarchy, with the cpuset one populated
  for (const h of await cgroupHierarchies()) {
    const dir = join(h.path, cgroupRoot);
    await mkdir(dir);
    cgroupDirs.push(dir);
    if (h.controllers.includes('cpuset')) {
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        await writeFile(join(dir, file), await readFile(join(h.path, file), 'utf8'));
      }
    }
  }

  // --- node files: kubeconfigs, DNS, hosts, the sysctl stand-ins, CNI, containerd, kubelet, kube-proxy
  await writeFile(p('kubelet.kubeconfig'), kubeconfig(ctx.nodeServer, ctx.caPem, ctx.tokens[kubeletIdentity(spec)]), {
    mode: 0o600,
  });
  await writeFile(p('kube-proxy.kubeconfig'), kubeconfig(ctx.nodeServer, ctx.caPem, ctx.tokens['kube-proxy']), {
    mode: 0o600,
  });
  await writeFile(p('resolv.conf'), `nameserver ${dnsIp}\nsearch ${NODE_NETWORK.clusterDomain}\noptions ndots:1\n`);
  const hosts = ['127.0.0.1 localhost', `${nodeIp} ${name}`];
  // the test's servers run on the first node
  if (ctx.hostNames.length > 0) hosts.push(`${dnsIp} ${ctx.hostNames.join(' ')}`);
  await writeFile(p('hosts'), hosts.join('\n') + '\n');
  for (const [key, value] of Object.entries(kubeletSysctls)) {
    await writeFile(p('sysctl', key.replaceAll('/', '.')), `${value}\n`);
  }
  for (const [tool, file] of [
    ['cni-bridge', 'bridge'],
    ['cni-host-local', 'host-local'],
    ['cni-loopback', 'loopback'],
    ['cni-portmap', 'portmap'],
  ] as const) {
    await execFileAsync('ln', ['-s', ctx.bin[tool], p('cni/bin', file)]);
  }
  await writeFile(p('cni/net.d/10-bridge.conflist'), cniConfig(spec.podCidr));
  await writeFile(p('containerd', 'config.toml'), nodeContainerdConfig(root, ctx.sandboxImage));
  await writeFile(p('kubelet-config.yaml'), kubeletConfig(root, cgroupRoot, containerdSock, nodeIp, dnsIp));
  const clusterCidr = ctx.specs.length > 1 ? NODE_NETWORK.clusterPodCidr : spec.podCidr;
  await writeFile(p('kube-proxy-config.yaml'), kubeProxyConfig(root, name, nodeIp, clusterCidr));
  const systemBundle = await readFile('/etc/ssl/certs/ca-certificates.crt', 'utf8').catch(() => '');
  await writeFile(p('node-ca-bundle.pem'), systemBundle + ctx.caPem);

  // --- the holder: the node's mount namespace, inside the network namespace
  const mountScript = [
    'set -e',
    'mount --make-rslave /',
    'mount -t tmpfs -o mode=0711 tmpfs /run/containerd',
    'mount -t tmpfs tmpfs /var/lib/cni',
    'mount -t tmpfs tmpfs /var/log/containers',
    'mount -t tmpfs tmpfs /var/log/pods',
    `mount --bind ${p('kubelet')} /var/lib/kubelet`,
    // kubelet mounts volumes under its root dir: they must propagate to containerd's view
    'mount --make-rshared /var/lib/kubelet',
    `mount --bind ${p('etc-containerd')} /etc/containerd`,
    `mount --bind ${p('resolv.conf')} /etc/resolv.conf`,
    `mount --bind ${p('hosts')} /etc/hosts`,
    ...Object.keys(kubeletSysctls).map(
      (key) => `mount --bind ${p('sysctl', key.replaceAll('/', '.'))} /proc/sys/${key}`,
    ),
    'echo mounted',
    'exec sleep infinity',
  ];
  const holding = spawnTracked(
    'nsenter',
    [
      `--net=/run/netns/${netns}`,
      'unshare',
      '--mount',
      '--propagation',
      'slave',
      '--',
      'sh',
      '-c',
      mountScript.join('\n'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  holder = holding;
  await new Promise<void>((ok, fail) => {
    let output = '';
    holding.stdout!.on('data', (d: Buffer) => {
      output += d.toString();
      if (output.includes('mounted')) ok();
    });
    holding.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    holding.once('exit', (code) =>
      fail(new Error(`the mount namespace of node ${name} could not be set up (exit ${code}):\n${output}`)),
    );
  });
  return node;
}

/** etcd, kube-apiserver, kube-controller-manager, kube-scheduler and CoreDNS on the first node. */
async function startControlPlane(
  node: NodeHost,
  ctx: ClusterContext,
  started: number,
): Promise<{ server: string; kubeconfigPath: string }> {
  const { bin, pkiDir } = ctx;
  const p = (...parts: string[]): string => join(node.root, ...parts);
  const pki = (file: string): string => join(pkiDir, file);
  for (const name of ['kube-controller-manager', 'kube-scheduler', 'coredns']) {
    await writeFile(p(`${name}.kubeconfig`), kubeconfig(ctx.nodeServer, ctx.caPem, ctx.tokens[name]), { mode: 0o600 });
  }
  await writeFile(p('Corefile'), corefile(node.root, node.ip, ctx.hostNames));
  node.spawn('etcd', bin.etcd, [
    '--name=node',
    `--data-dir=${p('etcd')}`,
    '--listen-client-urls=http://127.0.0.1:2379',
    '--advertise-client-urls=http://127.0.0.1:2379',
    '--listen-peer-urls=http://127.0.0.1:2380',
    '--initial-advertise-peer-urls=http://127.0.0.1:2380',
    '--initial-cluster=node=http://127.0.0.1:2380',
    '--listen-metrics-urls=http://127.0.0.1:2381',
    '--log-level=warn',
    '--unsafe-no-fsync',
  ]);
  await node.ready('etcd', () => httpOkOnNode(node.run, 'http://127.0.0.1:2379/health'));
  node.spawn('kube-apiserver', bin['kube-apiserver'], [
    '--etcd-servers=http://127.0.0.1:2379',
    '--bind-address=0.0.0.0',
    `--advertise-address=${node.ip}`,
    '--secure-port=6443',
    `--tls-cert-file=${pki('kube-apiserver.pem')}`,
    `--tls-private-key-file=${pki('kube-apiserver.key')}`,
    `--client-ca-file=${ctx.ca.cert}`,
    `--token-auth-file=${pki('tokens.csv')}`,
    '--authorization-mode=Node,RBAC',
    '--allow-privileged=true',
    `--service-account-key-file=${pki('sa.pub')}`,
    `--service-account-signing-key-file=${pki('sa.key')}`,
    `--service-account-issuer=https://kubernetes.default.svc.${NODE_NETWORK.clusterDomain}`,
    `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
    '--kubelet-preferred-address-types=InternalIP',
    '--enable-priority-and-fairness=false',
    '--shutdown-watch-termination-grace-period=2s',
    '--profiling=false',
  ]);
  const server = `https://127.0.0.1:${await node.forward(6443)}`;
  const kubeconfigPath = p('admin-host.kubeconfig');
  await writeFile(kubeconfigPath, kubeconfig(server, ctx.caPem, ctx.tokens.admin), { mode: 0o600 });
  await node.ready('kube-apiserver', () => httpsOk(`${server}/readyz`, ctx.tokens.admin, ctx.caPem), 120_000);
  ctx.log(`API server ready in ${seconds(started)}`);

  node.spawn('kube-controller-manager', bin['kube-controller-manager'], [
    `--kubeconfig=${p('kube-controller-manager.kubeconfig')}`,
    `--authentication-kubeconfig=${p('kube-controller-manager.kubeconfig')}`,
    `--authorization-kubeconfig=${p('kube-controller-manager.kubeconfig')}`,
    '--use-service-account-credentials=true',
    `--root-ca-file=${ctx.ca.cert}`,
    `--service-account-private-key-file=${pki('sa.key')}`,
    `--service-cluster-ip-range=${NODE_NETWORK.serviceCidr}`,
    '--leader-elect=false',
    '--secure-port=0',
    '--profiling=false',
  ]);
  node.spawn('kube-scheduler', bin['kube-scheduler'], [
    `--kubeconfig=${p('kube-scheduler.kubeconfig')}`,
    `--authentication-kubeconfig=${p('kube-scheduler.kubeconfig')}`,
    `--authorization-kubeconfig=${p('kube-scheduler.kubeconfig')}`,
    '--leader-elect=false',
    '--bind-address=127.0.0.1',
    '--secure-port=10259',
    '--profiling=false',
  ]);
  node.spawn('coredns', bin.coredns, ['-conf', p('Corefile')]);
  return { server, kubeconfigPath };
}

/** The node's containerd, until it answers. */
async function startContainerd(node: NodeHost, ctx: ClusterContext): Promise<void> {
  node.spawn('containerd', ctx.bin.containerd, ['--config', join(node.root, 'containerd', 'config.toml')], {
    PATH: `${join(ctx.bin['containerd-shim-runc-v2'], '..')}:${process.env.PATH}`,
    // the node trusts the cluster CA, which signs the test servers (an upstream registry)
    SSL_CERT_FILE: join(node.root, 'node-ca-bundle.pem'),
  });
  await node.ready('containerd', () => node.ctr(['version']).then(() => true), 60_000);
}

/** The node's kubelet and kube-proxy (their readiness is the Node's Ready, which the cluster waits for). */
function startNodeAgents(node: NodeHost, ctx: ClusterContext): void {
  const p = (...parts: string[]): string => join(node.root, ...parts);
  node.spawn('kubelet', ctx.bin.kubelet, [
    `--config=${p('kubelet-config.yaml')}`,
    `--kubeconfig=${p('kubelet.kubeconfig')}`,
    `--node-ip=${node.ip}`,
    `--hostname-override=${node.name}`,
    `--cert-dir=${p('kubelet', 'pki')}`,
    '--v=1',
  ]);
  node.spawn('kube-proxy', ctx.bin['kube-proxy'], [`--config=${p('kube-proxy-config.yaml')}`]);
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

async function ip(...args: string[]): Promise<void> {
  try {
    await execFileAsync('ip', args);
  } catch (err) {
    throw new Error(`ip ${args.join(' ')} failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
  }
}

/** Whether a GET from inside the node answers 2xx (curl, on the node's network). */
async function httpOkOnNode(run: (f: string, a: readonly string[]) => Promise<unknown>, url: string): Promise<boolean> {
  return run('curl', ['-fsS', '--max-time', '5', '-o', '/dev/null', url]).then(
    () => true,
    () => false,
  );
}

// --- TLS

interface Ca {
  readonly cert: string;
  readonly key: string;
}

async function makeCa(dir: string): Promise<Ca> {
  const cert = join(dir, 'ca.pem');
  const key = join(dir, 'ca.key');
  await execFileAsync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=mirror-synth node CA',
  ]);
  return { cert, key };
}

/** A serving certificate for `sans` (IPs and DNS names) signed by the CA. */
async function signCert(
  ca: Ca,
  dir: string,
  name: string,
  sans: readonly string[],
): Promise<{ cert: string; key: string }> {
  const base = join(dir, name);
  const alt = sans.map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`)).join(',');
  await writeFile(
    `${base}.ext`,
    [
      `subjectAltName=${alt}`,
      'basicConstraints=CA:FALSE',
      'keyUsage=digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'),
  );
  await execFileAsync('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${base}.key`,
    '-out',
    `${base}.csr`,
    '-subj',
    `/CN=${name}`,
  ]);
  await execFileAsync('openssl', [
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    `${base}.pem`,
    '-days',
    '2',
    '-extfile',
    `${base}.ext`,
  ]);
  return { cert: `${base}.pem`, key: `${base}.key` };
}

// --- configuration files

function kubeconfig(server: string, caPem: string, token: string): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'node', cluster: { server, 'certificate-authority-data': Buffer.from(caPem).toString('base64') } },
      ],
      users: [{ name: 'user', user: { token } }],
      contexts: [{ name: 'node', context: { cluster: 'node', user: 'user' } }],
      'current-context': 'node',
    },
    null,
    2,
  );
}

function cniConfig(podCidr: string): string {
  return JSON.stringify(
    {
      cniVersion: '1.0.0',
      name: 'ms-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: 'ms-cni0',
          isGateway: true,
          ipMasq: false, // no route out: nothing to masquerade for
          hairpinMode: true, // a Pod reaching itself through its Service
          ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
        },
        { type: 'portmap', capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

/** containerd 2.x as a node's CRI, everything under the node's root (see the header). */
function nodeContainerdConfig(root: string, sandboxImage: string): string {
  const c = join(root, 'containerd');
  return `version = 3
root = "${c}/root"
state = "${c}/state"
disabled_plugins = [
  "io.containerd.nri.v1.nri",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "${c}/containerd.sock"
[ttrpc]
  address = "${c}/containerd.sock.ttrpc"
[debug]
  address = "${c}/debug.sock"
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "${c}/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  # the stand-in images are imported, never pulled: keep them whatever kubelet's GC would like
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${sandboxImage}"
  [plugins."io.containerd.cri.v1.images".registry]
    # where the node agent writes, as on a real node
    config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  # runc cannot lower oom_score_adj without CAP_SYS_RESOURCE
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      BinaryName = "runc"
      SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["${root}/cni/bin"]
    conf_dir = "${root}/cni/net.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
`;
}

function kubeletConfig(
  root: string,
  cgroupRoot: string,
  containerdSock: string,
  nodeIp: string,
  dnsIp: string,
): string {
  return JSON.stringify(
    {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      cgroupRoot,
      containerRuntimeEndpoint: `unix://${containerdSock}`,
      address: nodeIp,
      readOnlyPort: 0,
      authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
      authorization: { mode: 'AlwaysAllow' },
      clusterDomain: NODE_NETWORK.clusterDomain,
      clusterDNS: [dnsIp],
      resolvConf: join(root, 'resolv.conf'),
      failSwapOn: false,
      volumePluginDir: join(root, 'kubelet-plugins'),
      podLogsDir: join(root, 'pod-logs'),
      // the host's disk is what it is: evict or collect images only when it is really full
      evictionHard: {
        'memory.available': '1Mi',
        'nodefs.available': '1%',
        'imagefs.available': '1%',
        'nodefs.inodesFree': '1%',
      },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      serializeImagePulls: false,
      nodeStatusUpdateFrequency: '4s',
      syncFrequency: '10s',
      protectKernelDefaults: false,
      enableControllerAttachDetach: true,
      localStorageCapacityIsolation: true,
    },
    null,
    2,
  );
}

function kubeProxyConfig(root: string, nodeName: string, nodeIp: string, clusterCidr: string): string {
  return JSON.stringify(
    {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      mode: 'iptables',
      clientConnection: { kubeconfig: join(root, 'kube-proxy.kubeconfig') },
      hostnameOverride: nodeName,
      clusterCIDR: clusterCidr,
      bindAddress: nodeIp,
      healthzBindAddress: '127.0.0.1:10256',
      metricsBindAddress: '127.0.0.1:10249',
      // the host-wide conntrack sysctls are read-only outside the initial namespace
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
    },
    null,
    2,
  );
}

function corefile(root: string, nodeIp: string, hostNames: readonly string[]): string {
  const { clusterDomain } = NODE_NETWORK;
  return `.:53 {
    bind ${nodeIp}
    errors
    health ${nodeIp}:8080
    ready ${nodeIp}:8181
    hosts {
        ${nodeIp} ${hostNames.join(' ')}
        fallthrough
    }
    kubernetes ${clusterDomain} in-addr.arpa {
        kubeconfig ${join(root, 'coredns.kubeconfig')}
        pods insecure
        ttl 5
    }
    cache 5
}
`;
}

// --- the API server, from the host

async function httpsOk(url: string, token: string, caPem: string): Promise<boolean> {
  const { request } = await import('node:https');
  return new Promise((ok) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}` }, ca: caPem, timeout: 5_000 }, (res) => {
      res.resume();
      ok(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => ok(false));
    req.end();
  });
}

async function apiRequest(
  server: string,
  token: string,
  caPem: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const { request } = await import('node:https');
  return new Promise((ok, fail) => {
    const req = request(
      `${server}${path}`,
      {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ca: caPem,
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () =>
          ok({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : undefined }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function nodeReady(server: string, token: string, caPem: string, nodeName: string): Promise<boolean> {
  const { status, json } = await apiRequest(server, token, caPem, 'GET', `/api/v1/nodes/${nodeName}`);
  if (status !== 200) return false;
  const conditions =
    (json as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? [];
  return conditions.some((c) => c.type === 'Ready' && c.status === 'True');
}

/** The Node object of `node`, with its Pod range (spec.podCIDR and podCIDRs, which only this first write may set). */
async function registerNode(
  server: string,
  token: string,
  caPem: string,
  node: Pick<ClusterNode, 'name' | 'podCidr'>,
): Promise<void> {
  const { status, json } = await apiRequest(server, token, caPem, 'POST', '/api/v1/nodes', {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: node.name },
    spec: { podCIDR: node.podCidr, podCIDRs: [node.podCidr] },
  });
  if (status !== 201) throw new Error(`registering Node ${node.name}: ${status} ${JSON.stringify(json)}`);
}

/** hostPath PersistentVolumes without a class, so the synthesized claims (no class) bind. */
async function createPersistentVolumes(
  server: string,
  token: string,
  caPem: string,
  root: string,
  count: number,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const dir = join(root, 'pv', `pv-${i}`);
    await mkdir(dir, { recursive: true, mode: 0o777 });
    await execFileAsync('chmod', ['0777', dir]);
    const { status, json } = await apiRequest(server, token, caPem, 'POST', '/api/v1/persistentvolumes', {
      apiVersion: 'v1',
      kind: 'PersistentVolume',
      metadata: { name: `pv-${i}` },
      spec: {
        capacity: { storage: '100Gi' },
        accessModes: ['ReadWriteOnce'],
        persistentVolumeReclaimPolicy: 'Retain',
        hostPath: { path: dir, type: 'Directory' },
      },
    });
    if (status !== 201) throw new Error(`creating PersistentVolume pv-${i}: ${status} ${JSON.stringify(json)}`);
  }
}

// --- leaving nothing behind

/** SIGKILL every process in the node's cgroups (the containers), until none is left. */
async function killCgroup(dirs: readonly string[]): Promise<void> {
  for (let round = 0; round < 20; round++) {
    const pids = new Set<number>();
    for (const dir of dirs) for (const pid of await cgroupPids(dir)) pids.add(pid);
    if (pids.size === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await sleep(100);
  }
}

async function cgroupPids(dir: string): Promise<number[]> {
  const pids: number[] = [];
  const procs = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  for (const line of procs.split('\n')) if (line) pids.push(Number(line));
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isDirectory()) pids.push(...(await cgroupPids(join(dir, e.name))));
  return pids;
}

/** SIGKILL every process that shares the holder's mount or network namespace (shims are reparented to PID 1). */
async function sweepNamespaces(holder: ChildProcess): Promise<void> {
  const pid = holder.pid;
  if (pid === undefined || hasExited(holder)) return;
  const mnt = await readlink(`/proc/${pid}/ns/mnt`).catch(() => undefined);
  const net = await readlink(`/proc/${pid}/ns/net`).catch(() => undefined);
  if (!mnt || !net) return;
  for (let round = 0; round < 20; round++) {
    let found = 0;
    for (const entry of await readdir('/proc')) {
      const other = Number(entry);
      if (!Number.isInteger(other) || other === pid || other === process.pid) continue;
      const [m, n] = await Promise.all([
        readlink(`/proc/${other}/ns/mnt`).catch(() => undefined),
        readlink(`/proc/${other}/ns/net`).catch(() => undefined),
      ]);
      if (m !== mnt && n !== net) continue;
      found++;
      try {
        process.kill(other, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    if (found === 0) return;
    await sleep(100);
  }
}

/** Remove the node's cgroup directories, deepest first (kubelet leaves kubepods/... behind). */
async function removeCgroups(dirs: readonly string[]): Promise<void> {
  const remove = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) if (e.isDirectory()) await remove(join(dir, e.name));
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(dir);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        await sleep(100); // a task that is still exiting keeps it busy
      }
    }
  };
  for (const dir of dirs) await remove(dir);
}

/** Mount points a node covers, or makes: what a cluster could leave mounted on the host. */
const nodeMountPoints = [
  ...shadowedDirs,
  '/etc/resolv.conf',
  '/etc/hosts',
  '/proc/sys/',
  '/run/netns/ms-node-',
  '/tmp/ms-node-',
  '/sys/fs/cgroup/',
];

/**
 * What of the host a cluster could leave behind: mounts on the paths a node covers, network
 * interfaces, iptables rules for its ranges and `ms-node-` namespaces. Only these, so that what
 * other tests on the machine do meanwhile does not count.
 */
export async function hostState(): Promise<{ mounts: string[]; links: string[]; rules: string[]; netns: string[] }> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8'))
    .split('\n')
    .filter((line) => nodeMountPoints.some((m) => line.split(' ')[1]?.startsWith(m)))
    .sort();
  const { stdout: links } = await execFileAsync('ip', ['-o', 'link']);
  const { stdout: rules } = await execFileAsync('iptables-save');
  return {
    mounts,
    links: links
      .split('\n')
      .map((l) => l.split(':')[1]?.trim())
      .filter((l): l is string => !!l && /^(ms|veth|cni)/.test(l))
      .sort(),
    rules: rules
      .split('\n')
      .filter((l) => l.startsWith('-A') && /KUBE|CNI|10\.21[345]\./.test(l))
      .sort(),
    netns: (await readdir('/run/netns').catch(() => [])).filter((n) => n.startsWith('ms-node-')).sort(),
  };
}

/** Whether a file exists (for callers that poll the node's directories). */
export async function pathExists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () =>
      stat(path).then(
        () => true,
        () => false,
      ),
  );
}
