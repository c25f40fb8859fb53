// Binaries the tests run, built from the Go modules under tools/ and cached by version.
// A cached binary is found without running Go; a missing one is built by tools/build.sh,
// whose output is streamed with a prefix so a long cold build shows progress.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, readdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export type ToolName =
  | 'kube-apiserver'
  | 'kube-controller-manager'
  | 'kube-scheduler'
  | 'kubelet'
  | 'kube-proxy'
  | 'etcd'
  | 'registry'
  | 'containerd'
  | 'ctr'
  | 'containerd-shim-runc-v2'
  | 'prometheus'
  | 'promtool'
  | 'helm'
  | 'cri-pull'
  | 'kustomize'
  | 'mtail'
  | 'prometheus-operator-crds'
  | 'kube-state-metrics'
  | 'node_exporter'
  | 'cni-bridge'
  | 'cni-host-local'
  | 'cni-loopback'
  | 'cni-portmap'
  | 'coredns'
  | 'pause'
  | 'weed'
  | 'cosign';

export type ModuleName =
  | 'kube'
  | 'etcd'
  | 'registry'
  | 'containerd'
  | 'prometheus'
  | 'helm'
  | 'cri-pull'
  | 'kustomize'
  | 'mtail'
  | 'prometheus-operator'
  | 'kube-state-metrics'
  | 'node-exporter'
  | 'cni'
  | 'coredns'
  | 'pause'
  | 'seaweedfs'
  | 'cosign';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Each tool's Go module under tools/, the module path whose version names the cache entry, and
 * the file tools/build.sh writes when it is not named like the tool.
 */
const modules: Record<ToolName, { module: ModuleName; pinned: string; file?: string }> = {
  'kube-apiserver': { module: 'kube', pinned: 'k8s.io/kubernetes' },
  'kube-controller-manager': { module: 'kube', pinned: 'k8s.io/kubernetes' },
  'kube-scheduler': { module: 'kube', pinned: 'k8s.io/kubernetes' },
  kubelet: { module: 'kube', pinned: 'k8s.io/kubernetes' },
  'kube-proxy': { module: 'kube', pinned: 'k8s.io/kubernetes' },
  etcd: { module: 'etcd', pinned: 'go.etcd.io/etcd/server/v3' },
  registry: { module: 'registry', pinned: 'github.com/distribution/distribution/v3' },
  containerd: { module: 'containerd', pinned: 'github.com/containerd/containerd/v2' },
  ctr: { module: 'containerd', pinned: 'github.com/containerd/containerd/v2' },
  'containerd-shim-runc-v2': { module: 'containerd', pinned: 'github.com/containerd/containerd/v2' },
  prometheus: { module: 'prometheus', pinned: 'github.com/prometheus/prometheus' },
  promtool: { module: 'prometheus', pinned: 'github.com/prometheus/prometheus' },
  helm: { module: 'helm', pinned: 'helm.sh/helm/v3' },
  // a CRI client of our own (tools/cri-pull), named by the CRI API version it speaks
  'cri-pull': { module: 'cri-pull', pinned: 'k8s.io/cri-api' },
  kustomize: { module: 'kustomize', pinned: 'sigs.k8s.io/kustomize/kustomize/v5' },
  mtail: { module: 'mtail', pinned: 'github.com/google/mtail' },
  // a directory of CRD manifests copied from the operator's module, nothing compiled
  'prometheus-operator-crds': {
    module: 'prometheus-operator',
    pinned: 'github.com/prometheus-operator/prometheus-operator',
    file: 'crds',
  },
  'kube-state-metrics': { module: 'kube-state-metrics', pinned: 'k8s.io/kube-state-metrics/v2' },
  node_exporter: { module: 'node-exporter', pinned: 'github.com/prometheus/node_exporter' },
  // the CNI plugins sit in one directory, as a node's /opt/cni/bin
  'cni-bridge': { module: 'cni', pinned: 'github.com/containernetworking/plugins', file: 'bridge' },
  'cni-host-local': { module: 'cni', pinned: 'github.com/containernetworking/plugins', file: 'host-local' },
  'cni-loopback': { module: 'cni', pinned: 'github.com/containernetworking/plugins', file: 'loopback' },
  'cni-portmap': { module: 'cni', pinned: 'github.com/containernetworking/plugins', file: 'portmap' },
  coredns: { module: 'coredns', pinned: 'github.com/coredns/coredns' },
  // the e2e node's Pod sandbox (tools/pause), named by the golang.org/x/sys it is built with
  pause: { module: 'pause', pinned: 'golang.org/x/sys' },
  // an S3 server for spec.objectStorage's tests
  weed: { module: 'seaweedfs', pinned: 'github.com/seaweedfs/seaweedfs' },
  // signs and verifies the release image and its SBOM (scripts/release.sh)
  cosign: { module: 'cosign', pinned: 'github.com/sigstore/cosign/v2' },
};

/** One build per module per process; tools/build.sh serialises builds across processes. */
const builds = new Map<ModuleName, Promise<void>>();

/** The cache directory tools/build.sh writes to. */
export function toolsCacheDir(): string {
  return process.env.MIRROR_SYNTH_TOOLS_DIR ?? join(homedir(), '.cache', 'mirror-synth', 'tools');
}

/**
 * The path of a tool's binary, building it first if it is not cached.
 * `MIRROR_SYNTH_<NAME>` (e.g. `MIRROR_SYNTH_KUBE_APISERVER`) points at a binary of your own instead.
 */
export async function ensureTool(name: ToolName): Promise<string> {
  const override = process.env[`MIRROR_SYNTH_${name.toUpperCase().replaceAll('-', '_')}`];
  if (override) return override;

  const { module, pinned, file } = modules[name];
  const binary = join(toolsCacheDir(), await cacheEntry(module, pinned), file ?? name);
  if (await exists(binary)) return binary;

  let build = builds.get(module);
  if (!build) {
    build = runBuild(module);
    builds.set(module, build);
    build.catch(() => builds.delete(module)); // a later caller may retry
  }
  await build;
  if (!(await exists(binary))) {
    throw new Error(`tools/build.sh ${module} finished but ${binary} does not exist`);
  }
  return binary;
}

/** Whether a tool is already cached (or overridden), without building it. */
export async function hasTool(name: ToolName): Promise<boolean> {
  if (process.env[`MIRROR_SYNTH_${name.toUpperCase().replaceAll('-', '_')}`]) return true;
  const { module, pinned, file } = modules[name];
  return exists(join(toolsCacheDir(), await cacheEntry(module, pinned), file ?? name));
}

/** The directory holding a module's binaries (to put on PATH, e.g. containerd beside its shim). */
export async function ensureToolDir(name: ToolName): Promise<string> {
  return dirname(await ensureTool(name));
}

/** The version tools/<module>/go.mod pins for a tool, e.g. 'v2.4.2' for ctr. */
export async function toolVersion(name: ToolName): Promise<string> {
  const { module, pinned } = modules[name];
  return pinnedVersion(module, pinned);
}

/**
 * A module's cache entry, as tools/build.sh names it: `<module>-<version>`, plus `-src<hash>` of
 * tools/<module>'s files when it holds Go source of ours (not just tools.go), so that editing the
 * source rebuilds it.
 */
async function cacheEntry(module: ModuleName, pinned: string): Promise<string> {
  const version = await pinnedVersion(module, pinned);
  const dir = join(repoRoot, 'tools', module);
  const entries = await readdir(dir, { withFileTypes: true });
  // tools.go only pins the module (go.mod names the version): nothing of ours is built
  if (!entries.some((e) => e.isFile() && e.name.endsWith('.go') && e.name !== 'tools.go')) {
    return `${module}-${version}`;
  }
  // regular files not starting with a dot, as build.sh's `ls` and `[[ -f && ! -L ]]` see them
  const names = entries
    .filter((e) => e.isFile() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  let listing = '';
  for (const n of names) {
    listing += `${n}\n${createHash('sha256')
      .update(await readFile(join(dir, n)))
      .digest('hex')}\n`;
  }
  return `${module}-${version}-src${createHash('sha256').update(listing).digest('hex').slice(0, 12)}`;
}

async function pinnedVersion(module: ModuleName, pinned: string): Promise<string> {
  const goMod = join(repoRoot, 'tools', module, 'go.mod');
  const text = await readFile(goMod, 'utf8');
  const escaped = pinned.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const match = new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(text);
  if (!match) throw new Error(`${goMod}: no 'require ${pinned} <version>' line`);
  return match[1];
}

function runBuild(module: ModuleName): Promise<void> {
  const script = join(repoRoot, 'tools', 'build.sh');
  return new Promise((resolvePromise, reject) => {
    const child = spawn('bash', [script, module], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    const prefix = `[tools/build.sh ${module}] `;
    const tail: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        process.stderr.write(prefix + line + '\n');
        tail.push(line);
        if (tail.length > 30) tail.shift();
      });
    }
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(`tools/build.sh ${module} failed (${signal ?? `exit ${code}`}):\n${tail.join('\n')}`));
    });
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
