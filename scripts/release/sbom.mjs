#!/usr/bin/env node
// The controller image's SBOM (CycloneDX 1.5 JSON), from what the image archive holds, layer by
// layer, for every platform of its index:
//   - each npm package under /app/node_modules, named and versioned by the package-lock.json entry
//     of its install path (the lock `npm ci` installed the layer from), with its sha512 and license;
//   - the Node.js release in /usr/local/bin/node (scripts/build-image.sh's NODE_VERSION);
//   - the Debian packages the runtime layer's shared libraries come from: for linux/amd64 the build
//     machine's (dpkg -S on each library, as build-image.sh copies them from it), for linux/arm64
//     the list the image carries (usr/local/share/doc/node/arm64-libraries.txt).
// Not `npm sbom`: with --omit dev --omit optional (npm 11.19) it leaves out direct dependencies
// such as yaml and cdk8s, and it describes a lockfile, not what the image holds.
//
//   node scripts/release/sbom.mjs <image.oci.tar> <out.cdx.json>
//
// Same archive, same bytes: the timestamp is SOURCE_DATE_EPOCH (else the image's creation time)
// and the serial number a hash of the content.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');
const [archive, out] = process.argv.slice(2);
if (!archive || !out) {
  console.error('usage: sbom.mjs <image.oci.tar> <out.cdx.json>');
  process.exit(2);
}

const fail = (message) => {
  console.error(`sbom: ${message}`);
  process.exit(1);
};
const member = (path) => execFileSync('tar', ['-xOf', archive, `./${path}`], { maxBuffer: 64 * 1024 * 1024 });
const blob = (digest) => JSON.parse(member(`blobs/${digest.replace(':', '/')}`).toString('utf8'));
// umoci 0.4's layers end without tar's closing blocks (test/support/controller-image.ts): zeros
// after the layer let GNU tar finish cleanly.
const layer = (digest, ...tarArgs) =>
  execFileSync(
    'bash',
    [
      '-c',
      '(tar -xOf "$1" "./blobs/${2/://}" | gzip -dc; head -c 10240 /dev/zero) | tar "${@:3}"',
      'layer',
      archive,
      digest,
      ...tarArgs,
    ],
    { maxBuffer: 256 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'] },
  ).toString('utf8');

const top = JSON.parse(member('index.json').toString('utf8'));
if (top.manifests?.length !== 1) fail(`${archive}: index.json names ${top.manifests?.length ?? 0} images, not one`);
const root0 = top.manifests[0];
const tag = root0.annotations?.['org.opencontainers.image.ref.name'] ?? '';
/** [{ platform, manifest }] for an index or a single image. */
const images =
  root0.mediaType === 'application/vnd.oci.image.index.v1+json'
    ? blob(root0.digest).manifests.map((m) => ({ arch: m.platform.architecture, manifest: blob(m.digest) }))
    : [{ manifest: blob(root0.digest) }].map((i) => ({ arch: blob(i.manifest.config.digest).architecture, ...i }));

const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')).packages;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const nodeVersion = /^NODE_VERSION=(\S+)$/m.exec(readFileSync(join(root, 'scripts/build-image.sh'), 'utf8'))?.[1];
if (!nodeVersion) fail('scripts/build-image.sh sets no NODE_VERSION');
const config = blob(images[0].manifest.config.digest);

const components = new Map(); // bom-ref -> component
const platformsOf = new Map(); // bom-ref -> Set of architectures
const add = (component, arch) => {
  const ref = component['bom-ref'];
  if (!components.has(ref)) components.set(ref, component);
  (platformsOf.get(ref) ?? platformsOf.set(ref, new Set()).get(ref)).add(arch);
};
const npmPurl = (name) => `pkg:npm/${name.startsWith('@') ? '%40' + name.slice(1) : name}`;
const PACKAGE_JSON =
  /^(?:\.\/)?app\/(node_modules\/(?:@[^/]+\/)?[^/]+(?:\/node_modules\/(?:@[^/]+\/)?[^/]+)*)\/package\.json$/;
const dpkgCache = new Map();
/** The Debian package (name:arch and version) that installed `path` on this machine. */
const dpkgOwner = (path) => {
  if (dpkgCache.has(path)) return dpkgCache.get(path);
  const candidates = [path, path.startsWith('/usr/') ? path.slice(4) : `/usr${path}`];
  let owner;
  for (const p of candidates) {
    try {
      owner = execFileSync('dpkg', ['-S', p], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .split(':')[0];
      const version = execFileSync('dpkg-query', ['-W', '-f', '${Version}', `${owner}:amd64`]).toString();
      owner = { name: owner, version };
      break;
    } catch {
      owner = undefined;
    }
  }
  dpkgCache.set(path, owner);
  return owner;
};
const distro = (() => {
  try {
    return /^VERSION_CODENAME="?([^"\n]+)/m.exec(readFileSync('/etc/os-release', 'utf8'))[1];
  } catch {
    return 'debian';
  }
})();
const deb = (name, version, arch, dist) => ({
  'bom-ref': `pkg:deb/debian/${name}@${version}?arch=${arch}`,
  type: 'library',
  name,
  version,
  purl: `pkg:deb/debian/${name}@${encodeURIComponent(version)}?arch=${arch}&distro=${dist}`,
});

for (const { arch, manifest } of images) {
  const paths = manifest.layers.flatMap((l) => layer(l.digest, '-tf', '-').split('\n').filter(Boolean));
  let npmCount = 0;
  for (const path of paths) {
    const m = PACKAGE_JSON.exec(path);
    if (!m) continue;
    const entry = lock[m[1]];
    if (!entry) fail(`${path} is in the image but package-lock.json has no "${m[1]}"`);
    const name = m[1].slice(m[1].lastIndexOf('node_modules/') + 'node_modules/'.length);
    const [alg, b64] = (entry.integrity ?? '').split('-');
    add(
      {
        'bom-ref': `${name}@${entry.version}`,
        type: 'library',
        name,
        version: entry.version,
        purl: `${npmPurl(name)}@${entry.version}`,
        ...(entry.license ? { licenses: [{ license: { id: entry.license } }] } : {}),
        ...(alg === 'sha512'
          ? { hashes: [{ alg: 'SHA-512', content: Buffer.from(b64, 'base64').toString('hex') }] }
          : {}),
      },
      arch,
    );
    npmCount++;
  }
  if (npmCount === 0) fail(`linux/${arch}: no package under app/node_modules`);
  if (!paths.some((p) => /^(\.\/)?usr\/local\/bin\/node$/.test(p))) fail(`linux/${arch}: no usr/local/bin/node`);
  add(
    {
      'bom-ref': `node@${nodeVersion}`,
      type: 'application',
      name: 'node',
      version: nodeVersion,
      purl: `pkg:github/nodejs/node@v${nodeVersion}`,
      licenses: [{ license: { id: 'MIT' } }],
    },
    arch,
  );
  const runtime = manifest.layers[0].digest;
  if (arch === 'amd64') {
    const libs = paths.filter((p) => /^(\.\/)?(usr\/)?lib(64|x32)?\/.*\.so[.0-9]*$/.test(p));
    for (const lib of libs) {
      const owner = dpkgOwner('/' + lib.replace(/^\.\//, ''));
      if (!owner) fail(`linux/amd64: /${lib} belongs to no Debian package on this machine (build the image here)`);
      add(deb(owner.name, owner.version, 'amd64', distro), arch);
    }
  } else {
    const list = layer(runtime, '-xOf', '-', 'usr/local/share/doc/node/arm64-libraries.txt');
    const suite =
      /^ARM64_SUITE=(\S+)$/m.exec(readFileSync(join(root, 'scripts/build-image.sh'), 'utf8'))?.[1] ?? 'debian';
    if (list.trim() === '') fail(`linux/${arch}: usr/local/share/doc/node/arm64-libraries.txt is missing or empty`);
    for (const line of list.split('\n').filter(Boolean)) {
      const [nameArch, version] = line.split(' ');
      add(deb(nameArch.split(':')[0], version, arch, suite), arch);
    }
  }
}

const sorted = [...components.values()]
  .map((c) => ({
    ...c,
    properties: [...platformsOf.get(c['bom-ref'])].sort().map((a) => ({ name: 'oci:platform', value: `linux/${a}` })),
  }))
  .sort((a, b) => (a['bom-ref'] < b['bom-ref'] ? -1 : a['bom-ref'] > b['bom-ref'] ? 1 : 0));
const epoch = process.env.SOURCE_DATE_EPOCH;
const timestamp = epoch ? new Date(Number(epoch) * 1000).toISOString() : config.created;
const body = {
  metadata: {
    timestamp,
    tools: {
      components: [{ type: 'application', name: 'mirror-synth scripts/release/sbom.mjs', version: pkg.version }],
    },
    component: {
      'bom-ref': `${pkg.name}@${pkg.version}`,
      type: 'container',
      name: pkg.name,
      version: tag || pkg.version,
      description: pkg.description,
      licenses: [{ license: { id: pkg.license } }],
      properties: [{ name: 'oci:digest', value: root0.digest }],
    },
  },
  components: sorted,
};
const hash = createHash('sha256').update(JSON.stringify(body)).digest('hex');
const uuid = `${hash.slice(0, 8)}-${hash.slice(8, 12)}-5${hash.slice(13, 16)}-a${hash.slice(17, 20)}-${hash.slice(20, 32)}`;
const bom = {
  $schema: 'http://cyclonedx.org/schema/bom-1.5.schema.json',
  bomFormat: 'CycloneDX',
  specVersion: '1.5',
  serialNumber: `urn:uuid:${uuid}`,
  version: 1,
  ...body,
};
writeFileSync(out, JSON.stringify(bom, null, 2) + '\n');
const count = (type) =>
  sorted.filter((c) => (type === 'deb' ? c.purl.startsWith('pkg:deb/') : c.purl.startsWith('pkg:npm/'))).length;
console.log(
  `sbom: ${out}: ${sorted.length} components (${count('npm')} npm packages, node ${nodeVersion}, ${count('deb')} Debian packages) for ${images.map((i) => `linux/${i.arch}`).join(', ')}`,
);
