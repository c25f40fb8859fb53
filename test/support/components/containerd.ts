// A real containerd standing for a node's container runtime: its own root, state and socket
// in a temp dir, the CRI plugin disabled, the native snapshotter. Either the Debian package
// (1.6, on PATH) or containerd 2.x built from tools/containerd (`containerdV2()`), each with
// its own ctr and the config format its version reads.
// Pulls go through `ctr images pull --hosts-dir`, which reads <hosts-dir>/<host>/hosts.toml
// exactly as the CRI plugin does with `config_path = "/etc/containerd/certs.d"`.
import { type ChildProcess, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

import { configMapData, containerEnv, findObject, type ManifestObject } from '../primitives/manifest.js';
import { spawnTracked, terminate } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { waitFor } from '../primitives/wait.js';

const execFileAsync = promisify(execFile);

export interface PullOptions {
  /** Directory standing for /etc/containerd/certs.d (hosts.toml per registry host). */
  readonly hostsDir: string;
  /** @default 'linux/amd64' */
  readonly platform?: string;
  /** `user:password` for registries that challenge (the upstream when the mirror is skipped). */
  readonly user?: string;
  /** CA bundle ctr trusts for https hosts without a hosts.toml `ca` (SSL_CERT_FILE). */
  readonly caFile?: string;
  /** Unpack into the snapshotter as a real pull does. @default true */
  readonly unpack?: boolean;
  /** @default 120_000 */
  readonly timeoutMs?: number;
}

export interface PullResult {
  /** The digest the reference resolved to (the index digest for a multi-platform image). */
  readonly digest: string;
  /** ctr's combined output, for error messages. */
  readonly output: string;
  readonly ms: number;
}

export class PullError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** Which containerd to run, and the ctr that talks to it. */
export interface ContainerdBinaries {
  readonly containerd: string;
  readonly ctr: string;
  /** The config format this containerd reads natively: 2 for 1.x, 4 for 2.4 and later. */
  readonly configVersion: 2 | 4;
  /** Put first on containerd's PATH, so it starts this build's containerd-shim-runc-v2 for `ctr run`. */
  readonly shimDir?: string;
}

/** Debian's containerd 1.6 (the `containerd` package): containerd and ctr from PATH. */
export const debianContainerd: ContainerdBinaries = { containerd: 'containerd', ctr: 'ctr', configVersion: 2 };

/** containerd 2.x, ctr and containerd-shim-runc-v2 as tools/build.sh builds them (cached by version). */
export async function containerdV2(): Promise<ContainerdBinaries> {
  const [containerd, ctr, shim] = await Promise.all([
    ensureTool('containerd'),
    ensureTool('ctr'),
    ensureTool('containerd-shim-runc-v2'),
  ]);
  return { containerd, ctr, configVersion: 4, shimDir: dirname(shim) };
}

/**
 * config.toml for a containerd of its own in `dir`. Both formats say the same: sockets and
 * state under `dir`, and the plugins a node's CRI setup has but these tests do not use
 * disabled (a disabled plugin that a build lacks is ignored). Version 4 (containerd 2.4)
 * configures the servers as plugins; version 2 has [grpc], [ttrpc] and [debug] sections.
 */
export function containerdConfig(dir: string, version: 2 | 4): string {
  const disabled =
    version === 2
      ? ['io.containerd.grpc.v1.cri', 'io.containerd.snapshotter.v1.aufs']
      : [
          'io.containerd.grpc.v1.cri',
          'io.containerd.cri.v1.images',
          'io.containerd.cri.v1.runtime',
          'io.containerd.podsandbox.controller.v1.podsandbox',
          'io.containerd.snapshotter.v1.erofs',
          'io.containerd.differ.v1.erofs',
        ];
  disabled.push(
    'io.containerd.snapshotter.v1.btrfs',
    'io.containerd.snapshotter.v1.zfs',
    'io.containerd.snapshotter.v1.devmapper',
    'io.containerd.tracing.processor.v1.otlp',
    'io.containerd.internal.v1.tracing',
  );
  const lines = [
    `version = ${version}`,
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    // A node's CRI would read certs.d through config_path; here ctr does it with --hosts-dir.
    'disabled_plugins = [',
    ...disabled.map((p) => `  "${p}",`),
    ']',
  ];
  const sockets = {
    grpc: join(dir, 'containerd.sock'),
    ttrpc: join(dir, 'containerd.sock.ttrpc'),
    debug: join(dir, 'debug.sock'),
  };
  if (version === 2) {
    lines.push(
      '[grpc]',
      `  address = "${sockets.grpc}"`,
      '[ttrpc]',
      `  address = "${sockets.ttrpc}"`,
      '[debug]',
      `  address = "${sockets.debug}"`,
      '  level = "info"',
      // 1.x installs managed binaries under /opt/containerd unless told otherwise
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(dir, 'opt')}"`,
    );
  } else {
    lines.splice(1, 0, 'imports = []');
    lines.push(
      '[debug]',
      '  level = "info"',
      ...Object.entries(sockets).flatMap(([server, address]) => [
        `[plugins."io.containerd.server.v1.${server}"]`,
        `  address = "${address}"`,
      ]),
    );
  }
  return lines.join('\n') + '\n';
}

export class Containerd {
  readonly address: string;
  private readonly logLines: string[] = [];

  private constructor(
    readonly dir: string,
    readonly namespace: string,
    private readonly child: ChildProcess,
    readonly binaries: ContainerdBinaries,
  ) {
    this.address = join(dir, 'containerd.sock');
  }

  /**
   * Start containerd in `dir` (socket paths must stay under ~100 characters: use a short temp dir).
   * `binaries` picks Debian's 1.6 (the default) or `await containerdV2()`.
   */
  static async start(
    dir: string,
    namespace = 'e2e',
    binaries: ContainerdBinaries = debianContainerd,
  ): Promise<Containerd> {
    await mkdir(dir, { recursive: true });
    const configPath = join(dir, 'config.toml');
    await writeFile(configPath, containerdConfig(dir, binaries.configVersion));
    const log = createWriteStream(join(dir, 'containerd.log'));
    const path = [binaries.shimDir, process.env.PATH].filter(Boolean).join(':');
    const child = spawnTracked(binaries.containerd, ['--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PATH: path },
    });
    const c = new Containerd(dir, namespace, child, binaries);
    for (const s of [child.stdout!, child.stderr!]) {
      s.on('data', (d: Buffer) => {
        log.write(d);
        c.logLines.push(...d.toString().split('\n').filter(Boolean));
      });
    }
    child.once('close', () => log.end()); // 'close': after the pipes are drained (data can follow 'exit')
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor('containerd to serve its socket', async () => {
      if (exited) throw new Error(`containerd exited:\n${c.logLines.slice(-20).join('\n')}`);
      await c.ctr(['version']);
      return true;
    });
    return c;
  }

  /** Run ctr against this containerd; resolves with stdout+stderr, rejects with them (in the message too) on failure. */
  async ctr(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<string> {
    try {
      const { stdout, stderr } = await execFileAsync(
        this.binaries.ctr,
        ['--address', this.address, '-n', this.namespace, ...args],
        {
          env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
          timeout: timeoutMs,
          maxBuffer: 16 * 1024 * 1024,
        },
      );
      return stdout + stderr;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      // ctr prints a pull's progress (which host answered what) on stdout: the message carries it too.
      const progress = e.stdout?.trim() ? `\n${e.stdout.trim()}` : '';
      throw new PullError(
        `ctr ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}${progress}`,
        (e.stdout ?? '') + (e.stderr ?? ''),
      );
    }
  }

  /** Pull `ref` as a node would, reading hosts.toml files from `hostsDir`. */
  async pull(ref: string, opts: PullOptions): Promise<PullResult> {
    const args = ['images', 'pull', '--hosts-dir', opts.hostsDir, '--platform', opts.platform ?? 'linux/amd64'];
    if (opts.user) args.push('--user', opts.user);
    if (opts.unpack === false) args.splice(0, 2, 'content', 'fetch');
    else args.push('--snapshotter', 'native');
    args.push(ref);
    const env: NodeJS.ProcessEnv = opts.caFile ? { SSL_CERT_FILE: opts.caFile } : {};
    const start = Date.now();
    const output = await this.ctr(args, env, opts.timeoutMs ?? 120_000);
    const ms = Date.now() - start;
    const digest = opts.unpack === false ? digestFromFetch(output) : await this.imageDigest(ref);
    if (!digest) throw new PullError(`pulled ${ref} but found no digest in:\n${output}`, output);
    return { digest, output, ms };
  }

  /** The digest containerd recorded for an image it has, or undefined. */
  async imageDigest(ref: string): Promise<string | undefined> {
    const out = await this.ctr(['images', 'ls']);
    for (const line of out.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[0] === ref) return cols.find((c) => c.startsWith('sha256:'));
    }
    return undefined;
  }

  /**
   * Forget every image and let the garbage collector delete their content and snapshots, so
   * the next pull fetches everything again, as on a fresh node.
   */
  async forgetAll(): Promise<void> {
    const refs = outputLines(await this.ctr(['images', 'ls', '-q']));
    if (refs.length > 0) await this.ctr(['images', 'rm', '--sync', ...refs]);
    const leftover = outputLines(await this.ctr(['content', 'ls', '-q']));
    if (leftover.length > 0) await this.ctr(['content', 'rm', ...leftover]);
  }

  /** Digests in the content store. */
  async content(): Promise<string[]> {
    return outputLines(await this.ctr(['content', 'ls', '-q']));
  }

  /** containerd's own log lines so far. */
  logs(): string[] {
    return [...this.logLines];
  }

  /** SIGTERM and wait (SIGKILL after 10 s). */
  async stop(): Promise<void> {
    await terminate(this.child, 10_000);
  }
}

/** ctr's output lines without its log lines (containerd 2.x's ctr warns on stderr, e.g. about cgroup v1). */
function outputLines(output: string): string[] {
  return output.split('\n').filter((l) => l !== '' && !l.startsWith('time='));
}

/** `ctr content fetch` prints the resolved ref; take the index digest from its progress lines. */
function digestFromFetch(output: string): string | undefined {
  return /(?:index|manifest)-sha256:([0-9a-f]{64})/.exec(output)?.[1]?.replace(/^/, 'sha256:');
}

/** hosts.toml for `server` with mirrors tried first, as containerd documents it. */
export function hostsToml(server: string, mirrors: readonly { url: string; ca?: string }[], serverCa?: string): string {
  const lines = [`server = "${server}"`];
  if (serverCa) lines.push(`ca = "${serverCa}"`);
  for (const m of mirrors) {
    lines.push('', `[host."${m.url}"]`, '  capabilities = ["pull", "resolve"]');
    if (m.ca) lines.push(`  ca = "${m.ca}"`);
  }
  return lines.join('\n') + '\n';
}

/** Write <hostsDir>/<registryHost>/hosts.toml. */
export async function writeHostsToml(hostsDir: string, registryHost: string, content: string): Promise<string> {
  const dir = join(hostsDir, registryHost);
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'hosts.toml');
  await writeFile(file, content);
  return file;
}

// ---------------------------------------------------------------------------------------------
// The node agent, run as synthesized

export interface NodeAgentOptions {
  readonly name: string;
  readonly objects: readonly ManifestObject[];
  /** Temp dir standing for the node's directory the agent mounts (certs.d, or registries.conf.d for CRI-O). */
  readonly certsDir: string;
  /** Address the agent would resolve the Service to (skips DNS). */
  readonly mirrorAddress: string;
  readonly servicePort: number;
  /** @default 1 */
  readonly resolveIntervalSeconds?: number;
  /** Where to put the script file. */
  readonly workDir: string;
}

export class NodeAgent {
  readonly output: string[] = [];
  private readonly exitPromise: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(private readonly child: ChildProcess) {
    for (const s of [child.stdout!, child.stderr!]) {
      s.on('data', (d: Buffer) => this.output.push(...d.toString().split('\n').filter(Boolean)));
    }
    this.exitPromise = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.exitPromise;
  }

  /** Send SIGTERM (as the kubelet does when the pod goes) and wait for the script to exit. */
  async terminate(timeoutMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exitPromise;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const exit = await this.exitPromise;
    clearTimeout(timer);
    return exit;
  }
}

/**
 * The one host directory the node agent's DaemonSet mounts, after checking that it is the only
 * hostPath volume and that the agent's CONFIG_DIR is where the pod sees it.
 */
export function agentHostDir(objects: readonly ManifestObject[], name: string): string {
  const ds = findObject(objects, 'DaemonSet', `registry-mirror-${name}`) as unknown as {
    spec: {
      template: {
        spec: {
          volumes: { name: string; hostPath?: { path: string } }[];
          containers: { name: string; volumeMounts?: { name: string; mountPath: string }[] }[];
        };
      };
    };
  };
  const pod = ds.spec.template.spec;
  const hostPaths = pod.volumes.filter((v) => v.hostPath);
  if (hostPaths.length !== 1) throw new Error(`the node agent mounts ${hostPaths.length} host paths, not one`);
  const mount = pod.containers
    .find((c) => c.name === 'node-agent')
    ?.volumeMounts?.find((m) => m.name === hostPaths[0].name);
  const env = containerEnv(objects, 'DaemonSet', `registry-mirror-${name}`, 'node-agent');
  if (!mount || env.CONFIG_DIR !== mount.mountPath)
    throw new Error(`CONFIG_DIR '${env.CONFIG_DIR}' is not where the host path is mounted (${mount?.mountPath})`);
  return hostPaths[0].hostPath!.path;
}

/**
 * Run the ConfigMap's node-agent.sh with `sh` and the DaemonSet container's env, overriding only
 * CONFIG_DIR, MIRROR_ADDRESS, SERVICE_PORT and RESOLVE_INTERVAL.
 */
export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const script = configMapData(opts.objects, `registry-mirror-${opts.name}-agent`, 'node-agent.sh');
  await mkdir(opts.workDir, { recursive: true });
  const file = join(opts.workDir, 'node-agent.sh');
  await writeFile(file, script);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...containerEnv(opts.objects, 'DaemonSet', `registry-mirror-${opts.name}`, 'node-agent'),
    CONFIG_DIR: opts.certsDir,
    MIRROR_ADDRESS: opts.mirrorAddress,
    SERVICE_PORT: String(opts.servicePort),
    RESOLVE_INTERVAL: String(opts.resolveIntervalSeconds ?? 1),
  };
  return new NodeAgent(spawnTracked('sh', [file], { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Every file under `dir` (relative path -> content), to compare a directory before and after. */
export async function snapshotDir(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        out[path + '/'] = '';
        await walk(path);
      } else {
        out[path] = await readFile(join(dir, path), 'utf8');
      }
    }
  };
  await walk('');
  return out;
}
