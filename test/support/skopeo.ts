// skopeo from Debian standing for a CRI-O node: the same containers/image library CRI-O pulls
// with, reading a registries.conf and a registries.conf.d drop-in directory the test owns.
//
// skopeo 1.9 (bookworm) takes the main file from its hidden global --registries-conf flag and
// ignores CONTAINERS_REGISTRIES_CONF. With the main file given, containers/image reads the drop-ins
// of /etc/containers/registries.conf.d and then of $HOME/.config/containers/registries.conf.d,
// later files winning per prefix: the test points HOME at a temp dir and the node agent writes
// into <home>/.config/containers/registries.conf.d, which stands for the node's directory.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface ContainersNode {
  /** Stands for /etc/containers/registries.conf.d: where the CRI-O node agent writes. */
  readonly dropInDir: string;
  /** The main registries.conf (empty unless given). */
  readonly registriesConf: string;
  readonly home: string;
  /** Directory holding ca.crt for https registries (skopeo --src-cert-dir). */
  readonly certDir: string;
  readonly policy: string;
}

export interface CopyOptions {
  /** `user:password` for the upstream; containers/image never sends it to a mirror. */
  readonly creds?: string;
  /** @default 'linux' */
  readonly os?: string;
  /** @default 'amd64' */
  readonly arch?: string;
  /** @default 120_000 */
  readonly timeoutMs?: number;
}

export interface CopyResult {
  /** skopeo --debug output: which endpoints it tried, in order. */
  readonly output: string;
  /** The references containers/image tried, in order ("Trying to access ..."). */
  readonly tried: string[];
}

export class CopyError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

/** A temp "node" for skopeo under `dir`: empty registries.conf, drop-in dir, CA dir, accept-all policy. */
export async function containersNode(dir: string, caCert?: string, registriesConf = ''): Promise<ContainersNode> {
  const home = join(dir, 'home');
  const dropInDir = join(home, '.config', 'containers', 'registries.conf.d');
  const certDir = join(dir, 'certs');
  await mkdir(dropInDir, { recursive: true });
  await mkdir(certDir, { recursive: true });
  const conf = join(dir, 'registries.conf');
  await writeFile(conf, registriesConf);
  const policy = join(dir, 'policy.json');
  await writeFile(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  if (caCert) {
    await writeFile(join(certDir, 'ca.crt'), await readFile(caCert));
  }
  return { dropInDir, registriesConf: conf, home, certDir, policy };
}

/** `skopeo copy docker://<ref> oci:<dest>` as the node would pull it; rejects with skopeo's output. */
export async function skopeoCopy(
  node: ContainersNode,
  ref: string,
  dest: string,
  opts: CopyOptions = {},
): Promise<CopyResult> {
  await mkdir(dirname(dest), { recursive: true });
  const args = [
    '--debug',
    '--registries-conf',
    node.registriesConf,
    '--policy',
    node.policy,
    '--override-os',
    opts.os ?? 'linux',
    '--override-arch',
    opts.arch ?? 'amd64',
    'copy',
    '--src-cert-dir',
    node.certDir,
    ...(opts.creds ? ['--src-creds', opts.creds] : []),
    `docker://${ref}`,
    `oci:${dest}`,
  ];
  try {
    const { stdout, stderr } = await execFileAsync('skopeo', args, {
      env: { PATH: process.env.PATH, HOME: node.home },
      timeout: opts.timeoutMs ?? 120_000,
      maxBuffer: 32 * 1024 * 1024,
    });
    const output = stdout + stderr;
    return { output, tried: triedRefs(output) };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    const output = (e.stdout ?? '') + (e.stderr ?? '');
    const last = output
      .trim()
      .split('\n')
      .filter((l) => !l.includes('level=debug'))
      .slice(-3)
      .join('\n');
    throw new CopyError(`skopeo copy ${ref} failed: ${last || e.message}`, output);
  }
}

function triedRefs(output: string): string[] {
  return [...output.matchAll(/Trying to access \\?"([^"\\]+)\\?"/g)].map((m) => m[1]);
}
