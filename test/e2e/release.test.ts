// The release as .gitlab-ci.yml's release job runs it, `scripts/release.sh all v<version> ...`,
// against a real registry: CNCF Distribution on 127.0.0.1 (plain HTTP), skopeo pushing the image,
// cosign (built from its Go module) signing with a key made here and verifying, Helm pushing the
// chart. Then everything is read back the way a user would: the image index by digest with its
// two platforms, the signature checked with the public key (and refused with another key, on an
// unsigned copy, and once the signature is tampered with), the SBOM attestation naming the
// package's dependencies, the chart by `helm pull oci://` and `helm show chart`, the npm tarball.
// What only the real pipeline does (registry credentials, keyless signing and the Rekor log, npm's
// token and provenance through the CI's OIDC token) is not run here: `npm publish` runs with
// --dry-run and cosign without the transparency log (RELEASE_TLOG=0), so nothing leaves the machine.
// The image is built for linux/amd64 and linux/arm64 as the pipeline builds it (a few minutes);
// RELEASE_IMAGE_ARCHIVE in the environment pushes an archive built before instead.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { RegistryProcess } from '../support/components/registry.js';
import { removeOnExit } from '../support/primitives/processes.js';
import { repoRoot } from '../support/primitives/repo-root.js';
import { ensureTool } from '../support/primitives/tools.js';

const run = promisify(execFile);
const pkg = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(await readFile(join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { version: string }>;
};
const VERSION = pkg.version;
const PASSWORD = 'release-test-passphrase';

async function missing(): Promise<string | undefined> {
  const platforms = process.env.RELEASE_IMAGE_ARCHIVE ? [] : ['umoci', 'mmdebstrap'];
  for (const tool of ['skopeo', ...platforms]) {
    const found = await run('sh', ['-c', `command -v ${tool}`]).then(
      () => true,
      () => false,
    );
    if (!found) return `${tool} is not installed (sh scripts/install-test-deps.sh)`;
  }
  return undefined;
}
const skip = await missing();

let dir: string;
let out: string;
let registry: RegistryProcess;
let cosign: string;
let helm: string;
let env: NodeJS.ProcessEnv;
let imageRef: string;
let repo: string;
let digest: string;

const exec = (file: string, args: string[], extra: NodeJS.ProcessEnv = {}) =>
  run(file, args, { cwd: repoRoot, env: { ...env, ...extra }, maxBuffer: 64 * 1024 * 1024 });
const release = (args: string[], extra: NodeJS.ProcessEnv = {}) =>
  exec('bash', [join(repoRoot, 'scripts/release.sh'), ...args], extra).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
const skopeo = async (args: string[]) => (await exec('skopeo', args)).stdout;
const sha256 = (text: string | Buffer) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

describe.skipIf(skip)(`the release pipeline against a local registry${skip ? ` (skipped: ${skip})` : ''}`, () => {
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'release-'));
    removeOnExit(dir);
    out = join(dir, 'out');
    [cosign, helm] = await Promise.all([ensureTool('cosign'), ensureTool('helm')]);
    registry = await RegistryProcess.start({
      binary: await ensureTool('registry'),
      dir: join(dir, 'registry'),
      name: 'release registry',
      config: [
        'version: 0.1',
        'log: { level: info, formatter: json }',
        'storage: { filesystem: { rootdirectory: /unused }, delete: { enabled: true } }',
        'http: { addr: 127.0.0.1:0 }',
        '',
      ].join('\n'),
    });
    await mkdir(join(dir, 'keys', 'other'), { recursive: true });
    env = {
      ...process.env,
      HOME: join(dir, 'home'), // cosign's and helm's own config and caches: none of the user's
      DOCKER_CONFIG: join(dir, 'home', '.docker'),
      HELM_CONFIG_HOME: join(dir, 'home', 'helm'),
      HELM_CACHE_HOME: join(dir, 'home', 'helm-cache'),
      COSIGN: cosign,
      HELM: helm,
      COSIGN_PASSWORD: PASSWORD,
      COSIGN_KEY: join(dir, 'keys', 'cosign.key'),
      RELEASE_DIR: out,
      RELEASE_PLAIN_HTTP: '1',
      RELEASE_TLOG: '0',
      RELEASE_NPM_DRY_RUN: '1',
      // The image build's npm (its node binaries, the dependencies layer) keeps the user's caches:
      // HOME above is cosign's and helm's only.
      MIRROR_SYNTH_NODE_DIR: process.env.MIRROR_SYNTH_NODE_DIR ?? join(homedir(), '.cache', 'mirror-synth', 'node'),
      npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'),
    };
    for (const keys of [join(dir, 'keys'), join(dir, 'keys', 'other')]) {
      await run(cosign, ['generate-key-pair'], { cwd: keys, env: { ...env } });
    }
    repo = `${registry.host}/mirror-synth/controller`;
    const all = await release(['all', `v${VERSION}`, repo, `${registry.host}/mirror-synth/charts`]);
    if (all.code !== 0) throw new Error(`scripts/release.sh all exited ${all.code}:\n${all.stderr.slice(-6000)}`);
    imageRef = (await readFile(join(out, 'image.ref'), 'utf8')).trim();
    digest = imageRef.slice(imageRef.indexOf('@') + 1);
  }, 1_800_000);

  afterAll(async () => {
    await registry?.dispose();
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  });

  it('pushes one image index for linux/amd64 and linux/arm64, named by the digest of what the registry serves', async () => {
    expect(imageRef).toMatch(new RegExp(`^${repo}:${VERSION.replaceAll('.', '\\.')}@sha256:[0-9a-f]{64}$`));
    const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${repo}@${digest}`]);
    expect(sha256(raw)).toBe(digest);
    const index = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: object }[] };
    expect(index.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { architecture: 'amd64', os: 'linux' },
      { architecture: 'arm64', os: 'linux' },
    ]);
    // The tag names the same index.
    expect(sha256(await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${repo}:${VERSION}`]))).toBe(
      digest,
    );
    // Pulled back by digest, each platform is the image the archive holds, labelled with the version.
    for (const arch of ['amd64', 'arm64']) {
      const pulled = join(dir, `pulled-${arch}`);
      await skopeo([
        '--override-arch',
        arch,
        'copy',
        '--src-tls-verify=false',
        `docker://${repo}@${digest}`,
        `dir:${pulled}`,
      ]);
      const manifest = await readFile(join(pulled, 'manifest.json'));
      expect(index.manifests.map((m) => m.digest)).toContain(sha256(manifest));
      const config = JSON.parse(
        await readFile(
          join(pulled, (JSON.parse(manifest.toString()) as { config: { digest: string } }).config.digest.slice(7)),
          'utf8',
        ),
      ) as { architecture: string; config: { Labels: Record<string, string> } };
      expect(config.architecture).toBe(arch);
      expect(config.config.Labels['org.opencontainers.image.version']).toBe(VERSION);
    }
  });

  it('signs the index and each platform image: cosign verifies them with the public key', async () => {
    expect(await release(['verify', imageRef])).toMatchObject({ code: 0 });
    const verified = (await readFile(join(out, 'verify.json'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => JSON.parse(l) as { critical: { image: { 'docker-manifest-digest': string } } }[]);
    expect(verified.map((v) => v.critical.image['docker-manifest-digest'])).toEqual([digest]);
    const index = JSON.parse(
      await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${repo}@${digest}`]),
    ) as {
      manifests: { digest: string }[];
    };
    // Each platform's image by its own digest (what a node resolves the index to) has its signature
    // too (sign --recursive); the SBOM is attested to the index.
    const key = join(dir, 'keys', 'cosign.pub');
    for (const m of index.manifests) {
      const ref = `${repo}@${m.digest}`;
      const args = ['verify', `--key=${key}`, '--insecure-ignore-tlog=true', '--allow-http-registry', ref];
      const { stdout } = await exec(cosign, args);
      expect(stdout).toContain(m.digest);
    }
  });

  it('refuses the image with another public key, and an unsigned copy of it', async () => {
    const other = await release(['verify', imageRef], { COSIGN_PUBLIC_KEY: join(dir, 'keys', 'other', 'cosign.pub') });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toMatch(/no matching signatures|invalid signature/i);
    const archive = (await readFile(join(out, 'image.archive'), 'utf8')).trim();
    const unsigned = `${registry.host}/mirror-synth/unsigned`;
    await skopeo([
      'copy',
      '--all',
      '--preserve-digests',
      '--dest-tls-verify=false',
      `oci-archive:${archive}`,
      `docker://${unsigned}:${VERSION}`,
    ]);
    const copy = await release(['verify', `${unsigned}@${digest}`]);
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/no signatures found/i);
  });

  it('refuses the image once its signature is tampered with, and verifies it again once restored', async () => {
    const url = `${registry.url}/v2/mirror-synth/controller/manifests/${digest.replace(':', '-')}.sig`;
    const type = 'application/vnd.oci.image.manifest.v1+json';
    const original = await (await fetch(url, { headers: { accept: type } })).text();
    const manifest = JSON.parse(original) as { layers: { annotations: Record<string, string> }[] };
    const key = 'dev.cosignproject.cosign/signature';
    const signature = Buffer.from(manifest.layers[0].annotations[key], 'base64');
    signature[signature.length - 8] ^= 0xff;
    manifest.layers[0].annotations[key] = signature.toString('base64');
    const put = (body: string) => fetch(url, { method: 'PUT', headers: { 'content-type': type }, body });
    expect((await put(JSON.stringify(manifest))).status).toBe(201);
    const tampered = await release(['verify', imageRef]);
    expect(tampered.code).not.toBe(0);
    expect(tampered.stderr).toMatch(/invalid signature|no matching signatures/i);
    expect((await put(original)).status).toBe(201);
    expect(await release(['verify', imageRef])).toMatchObject({ code: 0 });
  });

  it("attests an SBOM to the image that names the package's dependencies, node and the Debian libraries", async () => {
    const lines = (await readFile(join(out, 'verify-attestation.json'), 'utf8')).split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const statement = JSON.parse(
      Buffer.from((JSON.parse(lines[0]) as { payload: string }).payload, 'base64').toString(),
    ) as {
      predicateType: string;
      subject: { digest: { sha256: string } }[];
      predicate: {
        metadata: { component: { name: string; version: string } };
        components: { name: string; version: string; purl: string }[];
      };
    };
    expect(statement.predicateType).toBe('https://cyclonedx.org/bom');
    expect(statement.subject.map((s) => `sha256:${s.digest.sha256}`)).toEqual([digest]);
    const sbom = statement.predicate;
    expect(sbom).toEqual(JSON.parse(await readFile(join(out, 'sbom.cdx.json'), 'utf8')));
    expect(sbom.metadata.component).toMatchObject({ name: 'mirror-synth', version: VERSION });
    const named = new Map(sbom.components.map((c) => [`${c.name}@${c.version}`, c]));
    for (const dep of Object.keys(pkg.dependencies)) {
      expect(named.has(`${dep}@${lock.packages[`node_modules/${dep}`].version}`), dep).toBe(true);
    }
    for (const dev of ['vitest', 'typescript', 'eslint', 'backport']) {
      expect(
        sbom.components.some((c) => c.name === dev),
        dev,
      ).toBe(false);
    }
    const purls = sbom.components.map((c) => c.purl);
    expect(purls).toContain(
      `pkg:github/nodejs/node@v${(await run('sh', ['-c', 'sed -n "s/^NODE_VERSION=//p" scripts/build-image.sh'], { cwd: repoRoot })).stdout.trim()}`,
    );
    expect(purls.some((p) => /^pkg:deb\/debian\/libc6@.*\?arch=amd64/.test(p))).toBe(true);
    expect(purls.some((p) => /^pkg:deb\/debian\/libc6@.*\?arch=arm64/.test(p))).toBe(true);
  });

  it('pushes the chart as an OCI artifact: helm pull oci:// and helm show chart give it back, naming the image by digest', async () => {
    const chartRef = (await readFile(join(out, 'chart.ref'), 'utf8')).trim();
    expect(chartRef).toMatch(
      new RegExp(`^oci://${registry.host}/mirror-synth/charts/mirror-synth:${VERSION.replaceAll('.', '\\.')}@sha256:`),
    );
    const oci = `oci://${registry.host}/mirror-synth/charts/mirror-synth`;
    const shown = (await exec(helm, ['show', 'chart', oci, '--version', VERSION, '--plain-http'])).stdout;
    expect(shown).toMatch(/^name: "?mirror-synth"?$/m);
    expect(shown).toMatch(new RegExp(`^version: "?${VERSION.replaceAll('.', '\\.')}"?$`, 'm'));
    const pulled = join(dir, 'chart');
    await mkdir(pulled);
    await exec(helm, ['pull', oci, '--version', VERSION, '--plain-http', '--destination', pulled]);
    const rendered = (await exec(helm, ['template', 'mirror-synth', join(pulled, `mirror-synth-${VERSION}.tgz`)]))
      .stdout;
    const [tagged, digest] = imageRef.split('@') as [string, string];
    expect(rendered).toContain(`image: "${tagged.slice(0, tagged.lastIndexOf(':'))}@${digest}"`);
  });

  it('packs the npm package at the same version, with what the CLI needs and no sources or tests', async () => {
    const tarball = (await readFile(join(out, 'npm.ref'), 'utf8')).trim();
    expect(tarball).toBe(join(out, `mirror-synth-${VERSION}.tgz`));
    const packed = JSON.parse((await run('tar', ['-xOzf', tarball, 'package/package.json'])).stdout) as {
      version: string;
    };
    expect(packed.version).toBe(VERSION);
    const files = (await run('tar', ['-tzf', tarball], { maxBuffer: 16 * 1024 * 1024 })).stdout.split('\n');
    for (const f of ['package/bin/mirror-synth.js', 'package/lib/index.js', 'package/lib/cli/main.js'])
      expect(files).toContain(f);
    expect(files.some((f) => f.startsWith('package/assets/'))).toBe(true);
    expect(files.filter((f) => /^package\/(src|test|dist|mirrors|tools|scripts)\//.test(f))).toEqual([]);
  });
});
