// The controller image as `npm run build:image` writes it (scripts/build-image.sh, umoci): built
// when the archive is missing or older than anything it is made of, else reused. Its node is
// the release the script pins (NODE_VERSION), not the one the tests run on.
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { repoRoot } from './repo-root.js';

/** Where the build script writes the archive (its default IMAGE_OUT). */
export const IMAGE_ARCHIVE = join(repoRoot, 'build/mirror-synth-controller.oci.tar');

/** What the image is made of (the script pins the node binary): a newer file here makes the archive stale. */
const INPUTS = ['src', 'assets', 'bin', 'package.json', 'package-lock.json', 'tsconfig.json', 'scripts/build-image.sh'];

async function newestMtime(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = s.mtimeMs;
  for (const entry of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, entry)));
  return newest;
}

/** Whether the archive exists and is newer than every input. */
export async function imageIsFresh(archive = IMAGE_ARCHIVE): Promise<boolean> {
  const built = await stat(archive).then(
    (s) => s.mtimeMs,
    () => undefined,
  );
  if (built === undefined) return false;
  for (const input of INPUTS) if ((await newestMtime(join(repoRoot, input))) > built) return false;
  return true;
}

/** The image's config (user, entrypoint, ...) read from the archive's OCI layout. */
export interface ImageConfig {
  readonly User?: string;
  readonly Entrypoint?: string[];
  readonly Cmd?: string[];
  readonly WorkingDir?: string;
  readonly Env?: string[];
}

/**
 * Run scripts/build-image.sh with `env` added to the environment (IMAGE_OUT, IMAGE_PLATFORMS,
 * ...), its output to `logFile`; a failure rejects with its last lines.
 */
export async function buildImage(logFile: string, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const log = createWriteStream(logFile);
  const code = await new Promise<number | null>((ok, fail) => {
    const child = spawn('bash', [join(repoRoot, 'scripts/build-image.sh')], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    child.on('error', fail);
    child.on('close', ok);
  });
  await new Promise((ok) => log.end(ok));
  if (code !== 0) {
    const tail = (await readFile(logFile, 'utf8')).split('\n').slice(-30).join('\n');
    throw new Error(`scripts/build-image.sh exited ${code}:\n${tail}`);
  }
}

/**
 * The archive, built first (a few minutes: compile, npm ci --omit=dev, umoci) unless fresh.
 * The build's output goes to `logFile`; a failure rejects with its last lines.
 */
export async function ensureControllerImage(logFile: string): Promise<{ archive: string; built: boolean }> {
  if (await imageIsFresh()) return { archive: IMAGE_ARCHIVE, built: false };
  await buildImage(logFile);
  return { archive: IMAGE_ARCHIVE, built: true };
}

async function archiveFile(archive: string, path: string): Promise<string> {
  const { stdout } = await promisify(execFile)('tar', ['-xOf', archive, `./${path}`], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

/** The image's config, as the archive's index, manifest and config blob record it. */
export async function imageConfig(archive = IMAGE_ARCHIVE): Promise<ImageConfig> {
  const blob = (digest: string) => archiveFile(archive, `blobs/${digest.replace(':', '/')}`);
  const index = JSON.parse(await archiveFile(archive, 'index.json')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await blob(index.manifests[0].digest)) as { config: { digest: string } };
  return (JSON.parse(await blob(manifest.config.digest)) as { config: ImageConfig }).config;
}

/** The Node.js release the image runs: scripts/build-image.sh's NODE_VERSION (`24.22.3`). */
export function imageNodeVersion(): string {
  const text = readFileSync(join(repoRoot, 'scripts/build-image.sh'), 'utf8');
  const version = /^NODE_VERSION=(\S+)$/m.exec(text)?.[1];
  if (!version) throw new Error('scripts/build-image.sh sets no NODE_VERSION');
  return version;
}

/**
 * Every path in every layer of the image (as tar lists them: `app/node_modules/yaml/`), layer by
 * layer. The layers umoci 0.4 (Debian 12's) writes end right after the last file's data, without
 * its padding and the two zero blocks that end a tar archive: containerd reads them, GNU tar lists
 * every entry and then exits 2 with "Unexpected EOF in archive". That error, and only that one, is
 * taken as the end of the layer.
 */
export async function imageLayerPaths(archive = IMAGE_ARCHIVE): Promise<string[][]> {
  const blob = async (digest: string) => archiveFile(archive, `blobs/${digest.replace(':', '/')}`);
  const index = JSON.parse(await archiveFile(archive, 'index.json')) as { manifests: { digest: string }[] };
  const manifest = JSON.parse(await blob(index.manifests[0].digest)) as { layers: { digest: string }[] };
  const layers: string[][] = [];
  for (const layer of manifest.layers) {
    const script = 'tar -xOf "$1" "./blobs/${2/://}" | gzip -dc | tar -tf -';
    const listed = await promisify(execFile)('bash', ['-c', script, 'list', archive, layer.digest], {
      maxBuffer: 256 * 1024 * 1024,
    }).catch((err: Error & { stdout?: string; stderr?: string }) => {
      const other = (err.stderr ?? '')
        .split('\n')
        .filter((l) => l && !/Removing leading|Unexpected EOF in archive|Error is not recoverable/.test(l));
      if (!err.stderr?.includes('Unexpected EOF in archive') || other.length > 0) throw err;
      return { stdout: err.stdout ?? '' };
    });
    layers.push(listed.stdout.split('\n').filter(Boolean));
  }
  return layers;
}
