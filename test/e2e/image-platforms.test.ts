// The image for the platforms users run: `IMAGE_PLATFORMS=linux/amd64,linux/arm64 npm run
// build:image` writes one OCI image index holding an amd64 and an arm64 image. The arm64 one is
// unpacked layer by layer as a runtime would and run here under qemu-user (Debian's
// qemu-user-static, with the image's own root as the library prefix): its node is the pinned
// release for arm64, and every module of lib/ loads with the image's own node_modules. What this
// does not prove: a run on arm64 hardware or under a kernel's binfmt (qemu-user is an emulator).
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { buildImage, imageNodeVersion } from '../support/fixtures/controller-image.js';
import { removeOnExit } from '../support/primitives/processes.js';

const run = promisify(execFile);
const QEMU = 'qemu-aarch64-static';

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly platform?: { architecture: string; os: string };
  readonly annotations?: Record<string, string>;
}

async function missing(): Promise<string | undefined> {
  for (const tool of [QEMU, 'mmdebstrap', 'umoci']) {
    if (
      !(await run('sh', ['-c', `command -v ${tool}`]).then(
        () => true,
        () => false,
      ))
    )
      return `${tool} is not installed (sh scripts/install-test-deps.sh)`;
  }
  return undefined;
}
const skip = await missing();

let dir: string;
let layout: string;
const blob = async (digest: string): Promise<string> => readFile(join(layout, 'blobs', ...digest.split(':')), 'utf8');

describe.skipIf(skip)(`the image for linux/amd64 and linux/arm64${skip ? ` (skipped: ${skip})` : ''}`, () => {
  let manifests: Descriptor[];
  let layersOf: Record<string, string[]>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'img-platforms-'));
    removeOnExit(dir);
    const archive = join(dir, 'multi.oci.tar');
    await buildImage(join(dir, 'build.log'), { IMAGE_PLATFORMS: 'linux/amd64,linux/arm64', IMAGE_OUT: archive });
    layout = join(dir, 'layout');
    await mkdir(layout);
    await run('tar', ['-xf', archive, '-C', layout]);
    const top = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(top.manifests).toHaveLength(1);
    expect(top.manifests[0].mediaType).toBe('application/vnd.oci.image.index.v1+json');
    manifests = (JSON.parse(await blob(top.manifests[0].digest)) as { manifests: Descriptor[] }).manifests;
    layersOf = {};
    for (const m of manifests) {
      const manifest = JSON.parse(await blob(m.digest)) as { layers: { digest: string }[] };
      layersOf[m.platform!.architecture] = manifest.layers.map((l) => l.digest);
    }
  }, 1_800_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  });

  it('is one image index naming an amd64 and an arm64 image, each with its own runtime layer and the same app', async () => {
    expect(manifests.map((m) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ]);
    for (const m of manifests) {
      const manifest = JSON.parse(await blob(m.digest)) as { config: { digest: string } };
      const config = JSON.parse(await blob(manifest.config.digest)) as { architecture: string; os: string };
      expect(config).toMatchObject({ architecture: m.platform!.architecture, os: 'linux' });
    }
    const [amd64, arm64] = [layersOf.amd64, layersOf.arm64];
    expect(amd64).toHaveLength(3);
    expect(arm64[0]).not.toBe(amd64[0]); // node and its libraries
    expect(arm64.slice(1)).toEqual(amd64.slice(1)); // node_modules and the app: no native code
  });

  describe('the arm64 image, unpacked and run under qemu-user', () => {
    let rootfs: string;

    beforeAll(async () => {
      rootfs = join(dir, 'arm64');
      await mkdir(rootfs);
      for (const layer of layersOf.arm64) {
        // umoci 0.4 ends its layers right after the last file's data, without tar's padding and
        // closing blocks (see test/support/fixtures/controller-image.ts): GNU tar then drops the last file's
        // partial block. Zeros after the layer complete it, as a runtime's reader does not need.
        const file = join(layout, 'blobs', ...layer.split(':'));
        await run('bash', [
          '-c',
          '(gzip -dc "$1"; head -c 10240 /dev/zero) | tar -xf - -C "$2"',
          'unpack',
          file,
          rootfs,
        ]);
      }
    }, 300_000);

    const node = (args: string[]) =>
      run(QEMU, ['-L', rootfs, join(rootfs, 'usr/local/bin/node'), ...args], {
        cwd: join(rootfs, 'app'),
        timeout: 240_000,
      });

    it('holds an AArch64 node binary', async () => {
      const head = Buffer.alloc(20);
      const fh = await open(join(rootfs, 'usr/local/bin/node'), 'r');
      await fh.read(head, 0, 20, 0);
      await fh.close();
      expect(head.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
      expect(head.readUInt16LE(18)).toBe(183); // EM_AARCH64
    });

    it(`runs Node ${imageNodeVersion()} for arm64, and every module of lib/ loads with the image's node_modules`, async () => {
      const version = await node(['-p', 'process.version + " " + process.arch']);
      expect(version.stdout.trim()).toBe(`v${imageNodeVersion()} arm64`);
      const script = `
        const { readdirSync } = require('node:fs');
        const lib = ${JSON.stringify(join(rootfs, 'app/lib'))};
        const modules = readdirSync(lib, { recursive: true })
          .filter((f) => f.endsWith('.js') && !f.endsWith('render-worker.js'));
        (async () => {
          for (const f of modules) await import(lib + '/' + f);
          console.log('imported ' + modules.length);
        })().catch((e) => { console.log('failed: ' + e.message); process.exitCode = 1; });`;
      const imported = await node(['-e', script]);
      expect(imported.stdout.trim()).toMatch(/^imported [1-9][0-9]+$/);
      const help = await node([join(rootfs, 'app/bin/mirror-synth.js'), 'fill', '--help']);
      expect(help.stdout).toContain('--max-clients');
    }, 600_000);
  });
});
