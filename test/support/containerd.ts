// A real containerd (the Debian package) standing for a node's container runtime: its own
// root, state and socket in a temp dir, the CRI plugin disabled, the native snapshotter.
// Pulls go through `ctr images pull --hosts-dir`, which reads <hosts-dir>/<host>/hosts.toml
// exactly as the CRI plugin does with `config_path = "/etc/containerd/certs.d"`.
import { type ChildProcess, execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { configMapData, containerEnv, type ManifestObject, spawnTracked } from './registry.js';
import { waitFor } from './wait.js';

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

/** Which containerd to run: Debian's (on PATH) unless given. */
export interface ContainerdBinaries {
  readonly containerd: string;
  readonly ctr: string;
}

export class Containerd {
  readonly address: string;
  private readonly logLines: string[] = [];
  private ctrBinary = 'ctr';

  private constructor(
    readonly dir: string,
    readonly namespace: string,
    private readonly child: ChildProcess,
  ) {
    this.address = join(dir, 'containerd.sock');
  }

  /** Start containerd in `dir` (socket paths must stay under ~100 characters: use a short temp dir). */
  static async start(dir: string, namespace = 'e2e', binaries?: ContainerdBinaries): Promise<Containerd> {
    await mkdir(dir, { recursive: true });
    const config = [
      'version = 2',
      `root = "${join(dir, 'root')}"`,
      `state = "${join(dir, 'state')}"`,
      // A node's CRI would read certs.d through config_path; here ctr does it with --hosts-dir.
      'disabled_plugins = [',
      '  "io.containerd.grpc.v1.cri",',
      '  "io.containerd.snapshotter.v1.btrfs",',
      '  "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.snapshotter.v1.devmapper",',
      '  "io.containerd.snapshotter.v1.aufs",',
      '  "io.containerd.tracing.processor.v1.otlp",',
      '  "io.containerd.internal.v1.tracing",',
      ']',
      '[grpc]',
      `  address = "${join(dir, 'containerd.sock')}"`,
      '[ttrpc]',
      `  address = "${join(dir, 'containerd.sock.ttrpc')}"`,
      '[debug]',
      `  address = "${join(dir, 'debug.sock')}"`,
      '  level = "info"',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(dir, 'opt')}"`,
      '',
    ].join('\n');
    const configPath = join(dir, 'config.toml');
    await writeFile(configPath, config);
    const log = createWriteStream(join(dir, 'containerd.log'));
    const child = spawnTracked(binaries?.containerd ?? 'containerd', ['--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const c = new Containerd(dir, namespace, child);
    if (binaries) c.ctrBinary = binaries.ctr;
    for (const s of [child.stdout!, child.stderr!]) {
      s.on('data', (d: Buffer) => {
        log.write(d);
        c.logLines.push(...d.toString().split('\n').filter(Boolean));
      });
    }
    child.once('exit', () => log.end());
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor('containerd to serve its socket', async () => {
      if (exited) throw new Error(`containerd exited:\n${c.logLines.slice(-20).join('\n')}`);
      await c.ctr(['version']);
      return true;
    });
    return c;
  }

  /** Run ctr against this containerd; resolves with stdout+stderr, rejects with them on failure. */
  async ctr(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<string> {
    try {
      const { stdout, stderr } = await execFileAsync(
        this.ctrBinary,
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
      throw new PullError(
        `ctr ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`,
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
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
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
  /** Temp dir standing for the node's /etc/containerd/certs.d. */
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
 * Run the ConfigMap's node-agent.sh with `sh` and the DaemonSet container's env, overriding only
 * CERTS_DIR, MIRROR_ADDRESS, SERVICE_PORT and RESOLVE_INTERVAL.
 */
export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const script = configMapData(opts.objects, `registry-mirror-${opts.name}-agent`, 'node-agent.sh');
  await mkdir(opts.workDir, { recursive: true });
  const file = join(opts.workDir, 'node-agent.sh');
  await writeFile(file, script);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    ...containerEnv(opts.objects, 'DaemonSet', `registry-mirror-${opts.name}`, 'node-agent'),
    CERTS_DIR: opts.certsDir,
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
