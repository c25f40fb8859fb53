// Stand-in images for the e2e node: the pinned images mirror-synth synthesizes cannot be pulled
// here (no network), so they are built from the real binaries under their exact names and tags
// and imported into a containerd's `k8s.io` namespace, where the node's CRI finds them.
//
// Each stand-in keeps what a Pod can see of its real image: entrypoint, default command, user,
// working directory, environment, exposed ports, and the paths the synthesized Pods use.
//   registry        docker.io/library/registry (distribution-library-image): alpine with
//                   ca-certificates; /bin/registry, /entrypoint.sh (a config file as first
//                   argument means `registry serve <file>`), cmd /etc/distribution/config.yml,
//                   volume /var/lib/registry, OTEL_TRACES_EXPORTER=none, port 5000.
//   front           docker.io/nginxinc/nginx-unprivileged (alpine): user 101, port 8080,
//                   /docker-entrypoint.sh, cmd `nginx -g 'daemon off;'`, pid /tmp/nginx.pid and
//                   temp paths in /tmp, /var/cache/nginx owned by 101, logs linked to stdout and
//                   stderr, busybox's sh/df/awk (the readiness probe; its wget is GNU wget, see
//                   below), ca-certificates.
//   front-metrics   ghcr.io/google/mtail (from scratch): /usr/bin/mtail as entrypoint, workdir /tmp, port 3903.
//   volume-exporter quay.io/prometheus/node-exporter (busybox glibc): /bin/node_exporter as
//                   entrypoint, user nobody, port 9100.
//   node agent      docker.io/library/busybox (glibc): every applet in /bin, cmd sh.
//   sandbox         registry.k8s.io/pause (from scratch): /pause as entrypoint, user 65535:65535.
//   controller      the archive `npm run build:image` writes, unchanged, under CONTROLLER_IMAGE.
// The binaries: Distribution, mtail, node_exporter and pause built by tools/build.sh (static Go
// binaries), Debian's nginx and busybox with the shared libraries ldd lists, in /lib as the
// busybox glibc image keeps them. Debian's nginx has compiled-in paths of its own
// (/usr/share/nginx, /var/lib/nginx/*, /usr/lib/nginx/modules): the synthesized nginx.conf
// names every path it writes, and the directories of the others exist.
//
// Layers are uncompressed, deterministic tars (fixed mtime, owners as in the real image, entries
// in name order). A layer made of host files is cached under ~/.cache/mirror-synth/images,
// keyed by a hash of its recipe and each file's path, size, mtime and inode; the CA bundle
// (the system roots plus the test CA a node's cluster makes) is a small last layer of its own in
// the images that carry ca-certificates, so a new CA rebuilds nothing else.
import { execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';

import {
  FRONT_IMAGE,
  FRONT_METRICS_IMAGE,
  NODE_AGENT_IMAGE,
  NODE_EXPORTER_IMAGE,
  REGISTRY_IMAGE,
} from '../../src/construct/images.js';
import { ensureControllerImage } from './controller-image.js';
import { type Descriptor, MediaType, type PlatformImage, pseudoRandomBytes, type TestImage } from './images.js';
import { repoRoot } from './repo-root.js';
import { ensureTool } from './tools.js';

const execFileAsync = promisify(execFile);

/** The node's sandbox image (containerd's `sandbox` pinned image), built from tools/pause. */
export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.1';

const packageVersion = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/**
 * The name the controller image is imported under: give it to `controller-manifests --image` (the
 * controller then runs the streaming fill from it too) or synth's `--fill-image`. A name under the
 * reserved `.test` domain, that nothing publishes to: a manifest still naming another image (a
 * default such as ghcr.io/mirror-synth/...) fails to pull on the node. The tag is the one `npm run
 * build:image` records (package.json's version).
 */
export const CONTROLLER_IMAGE = `mirror-synth.test/mirror-synth:${packageVersion}`;

/** Every image importStandInImages imports: the synthesized images, the sandbox and the controller. */
export const STAND_IN_IMAGES = [
  REGISTRY_IMAGE,
  FRONT_IMAGE,
  FRONT_METRICS_IMAGE,
  NODE_EXPORTER_IMAGE,
  NODE_AGENT_IMAGE,
  PAUSE_IMAGE,
  CONTROLLER_IMAGE,
] as const;

/** Bump when the layout of any layer changes, so cached layers are rebuilt. */
const RECIPE_VERSION = 1;
const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const CREATED = '1970-01-01T00:00:00Z';
const ARCH = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch] ?? process.arch;

/** Where built layers and the unpacked controller archive are cached. */
export function standInImagesCacheDir(): string {
  return process.env.MIRROR_SYNTH_IMAGES_DIR ?? join(homedir(), '.cache', 'mirror-synth', 'images');
}

// ---------------------------------------------------------------------------------------------
// Layers: deterministic tars

interface EntryBase {
  /** Path in the image, without the leading slash: `bin/busybox`. */
  readonly path: string;
  /** @default 0 */
  readonly uid?: number;
  /** @default 0 */
  readonly gid?: number;
}
type Entry =
  | (EntryBase & { readonly type: 'dir'; readonly mode: number })
  | (EntryBase & { readonly type: 'file'; readonly mode: number; readonly source: string })
  | (EntryBase & { readonly type: 'file'; readonly mode: number; readonly content: Buffer | string })
  | (EntryBase & { readonly type: 'symlink'; readonly target: string })
  /** `target` is a path in the same layer (`bin/busybox`). */
  | (EntryBase & { readonly type: 'hardlink'; readonly target: string });

const dir = (path: string, mode = 0o755, uid = 0, gid = 0): Entry => ({ type: 'dir', path, mode, uid, gid });
const file = (path: string, source: string, mode = 0o755): Entry => ({ type: 'file', path, mode, source });
const text = (path: string, content: string, mode = 0o644, uid = 0, gid = 0): Entry => ({
  type: 'file',
  path,
  mode,
  content,
  uid,
  gid,
});
const symlink = (path: string, target: string): Entry => ({ type: 'symlink', path, target });

/** A layer as the image records it, and where its bytes are. */
interface Blob extends Descriptor {
  /** A file holding the bytes (cached layers, the controller's blobs) ... */
  readonly file?: string;
  /** ... or the bytes themselves (configs, manifests, small layers). */
  readonly data?: Buffer;
}

/** Entries in a stable order: missing parent directories added, hard links after their targets. */
function normalize(entries: readonly Entry[]): Entry[] {
  const byPath = new Map<string, Entry>();
  for (const e of entries) {
    if (byPath.has(e.path)) throw new Error(`stand-in layer: ${e.path} listed twice`);
    byPath.set(e.path, e);
  }
  for (const e of entries) {
    for (let parent = dirname(e.path); parent !== '.'; parent = dirname(parent)) {
      if (!byPath.has(parent)) byPath.set(parent, dir(parent));
    }
  }
  const order = (e: Entry): number => (e.type === 'hardlink' ? 1 : 0);
  return [...byPath.values()].sort((a, b) => order(a) - order(b) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function tarHeader(e: Entry, size: number): Buffer {
  const header = Buffer.alloc(512);
  const put = (offset: number, length: number, value: string): void => {
    if (Buffer.byteLength(value) > length) throw new Error(`stand-in layer: '${value}' does not fit a tar header`);
    header.write(value, offset, length, 'utf8');
  };
  const octal = (n: number, length: number): string => n.toString(8).padStart(length - 1, '0') + '\0';
  let name = e.type === 'dir' ? `${e.path}/` : e.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  const mode = e.type === 'symlink' || e.type === 'hardlink' ? 0o777 : e.mode;
  put(0, 100, name);
  put(100, 8, octal(mode, 8));
  put(108, 8, octal(e.uid ?? 0, 8));
  put(116, 8, octal(e.gid ?? 0, 8));
  put(124, 12, octal(size, 12));
  put(136, 12, octal(0, 12)); // mtime: the epoch, so the same inputs give the same digest
  put(148, 8, '        ');
  put(156, 1, { dir: '5', file: '0', symlink: '2', hardlink: '1' }[e.type]);
  if (e.type === 'symlink' || e.type === 'hardlink') put(157, 100, e.target);
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  put(329, 8, octal(0, 8));
  put(337, 8, octal(0, 8));
  put(345, 155, prefix);
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return header;
}

/** The layer's tar, chunk by chunk (files streamed from disk). */
async function* tarChunks(entries: readonly Entry[]): AsyncGenerator<Buffer> {
  for (const e of normalize(entries)) {
    if (e.type !== 'file') {
      yield tarHeader(e, 0);
      continue;
    }
    let size: number;
    if ('source' in e) {
      size = (await stat(e.source)).size;
      yield tarHeader(e, size);
      let read = 0;
      for await (const chunk of createReadStream(e.source) as AsyncIterable<Buffer>) {
        read += chunk.length;
        yield chunk;
      }
      if (read !== size) throw new Error(`stand-in layer: ${e.source} changed while it was read`);
    } else {
      const content = Buffer.from(e.content);
      size = content.length;
      yield tarHeader(e, size);
      yield content;
    }
    if (size % 512) yield Buffer.alloc(512 - (size % 512));
  }
  yield Buffer.alloc(1024);
}

/** What a layer is made of, as a cache key: each host file by path, size, mtime and inode. */
async function recipeKey(name: string, entries: readonly Entry[]): Promise<string> {
  const hash = createHash('sha256').update(`${RECIPE_VERSION}\0${name}\0`);
  for (const e of normalize(entries)) {
    const { path, type, uid = 0, gid = 0 } = e;
    hash.update(JSON.stringify({ path, type, uid, gid, mode: 'mode' in e ? e.mode : 0 }));
    if (e.type === 'symlink' || e.type === 'hardlink') hash.update(e.target);
    else if (e.type === 'file' && 'source' in e) {
      const s = await stat(e.source);
      hash.update(`${await realpath(e.source)}:${s.size}:${s.mtimeMs}:${s.ino}`);
    } else if (e.type === 'file') hash.update(createHash('sha256').update(e.content).digest('hex'));
  }
  return hash.digest('hex').slice(0, 32);
}

/** A layer in memory (small ones: configuration files, the CA bundle). */
async function memoryLayer(entries: readonly Entry[]): Promise<Blob> {
  const chunks: Buffer[] = [];
  for await (const chunk of tarChunks(entries)) chunks.push(chunk);
  const data = Buffer.concat(chunks);
  return { mediaType: MediaType.layer, digest: sha256(data), size: data.length, data };
}

/** A layer built once into the cache and reused while its recipe and files are unchanged. */
async function cachedLayer(name: string, entries: readonly Entry[]): Promise<Blob> {
  const layers = join(standInImagesCacheDir(), 'layers');
  const key = `${name}-${await recipeKey(name, entries)}`;
  const tarFile = join(layers, `${key}.tar`);
  const meta = join(layers, `${key}.json`);
  const cached = await readFile(meta, 'utf8').then(
    (t) => JSON.parse(t) as { digest: string; size: number },
    () => undefined,
  );
  if (
    cached &&
    (await stat(tarFile).then(
      (s) => s.size === cached.size,
      () => false,
    ))
  ) {
    return { mediaType: MediaType.layer, ...cached, file: tarFile };
  }
  await mkdir(layers, { recursive: true });
  const tmp = `${tarFile}.${process.pid}.${randomUUID()}.tmp`;
  const hash = createHash('sha256');
  let size = 0;
  try {
    await pipeline(
      Readable.from(tarChunks(entries)),
      async function* (source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(tmp),
    );
    // Data first, then its description: a reader that finds the .json finds the whole tar.
    await rename(tmp, tarFile);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const digest = 'sha256:' + hash.digest('hex');
  await writeFile(`${meta}.${process.pid}.tmp`, JSON.stringify({ digest, size }));
  await rename(`${meta}.${process.pid}.tmp`, meta);
  return { mediaType: MediaType.layer, digest, size, file: tarFile };
}

const sha256 = (data: Buffer | string): string => 'sha256:' + createHash('sha256').update(data).digest('hex');

// ---------------------------------------------------------------------------------------------
// The images' contents

/** A dynamically linked binary's libraries (soname -> file), as ldd lists them. */
async function sharedLibraries(binary: string): Promise<Map<string, string>> {
  const { stdout } = await execFileAsync('ldd', [binary]);
  const libs = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s/.exec(line);
    if (!m) continue;
    const path = m[2] ?? m[1];
    libs.set(basename(m[2] ? m[1] : path), await realpath(path));
  }
  return libs;
}

async function whichBinary(name: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync('sh', ['-c', `command -v ${name}`]);
    return await realpath(stdout.trim());
  } catch {
    throw new Error(`stand-in images need Debian's ${name} (scripts/install-test-deps.sh installs it)`);
  }
}

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
  'bin:x:2:2:bin:/bin:/bin/false',
  'sys:x:3:3:sys:/dev:/bin/false',
  'www-data:x:33:33:www-data:/var/www:/bin/false',
  'nobody:x:65534:65534:nobody:/home:/bin/false',
];
const GROUP = ['root:x:0:', 'daemon:x:1:', 'bin:x:2:', 'sys:x:3:', 'www-data:x:33:', 'nogroup:x:65534:'];
const lines = (l: readonly string[]): string => l.join('\n') + '\n';

/** Debian's busybox with every applet linked in /bin and the C library in /lib (busybox's glibc image). */
async function busyboxEntries(): Promise<{ entries: Entry[]; libs: Set<string> }> {
  const busybox = await whichBinary('busybox');
  const { stdout } = await execFileAsync(busybox, ['--list']);
  const applets = stdout.split('\n').filter((a) => a !== '' && a !== 'busybox' && !a.includes('/'));
  const libs = await sharedLibraries(busybox);
  const entries: Entry[] = [
    ...['bin', 'dev', 'etc', 'home', 'lib', 'usr/bin', 'usr/sbin', 'var/www'].map((d) => dir(d)),
    dir('root', 0o700),
    dir('tmp', 0o1777),
    symlink('lib64', 'lib'),
    file('bin/busybox', busybox),
    ...applets.map((a): Entry => ({ type: 'hardlink', path: `bin/${a}`, target: 'bin/busybox' })),
    symlink('usr/bin/env', '../../bin/env'),
    ...[...libs].map(([soname, path]) => file(`lib/${soname}`, path)),
    // glibc's resolver asks /etc/hosts before DNS, as the busybox image's nsswitch.conf says.
    text('etc/nsswitch.conf', lines(['passwd: files', 'group: files', 'shadow: files', 'hosts: files dns'])),
    text('etc/passwd', lines(PASSWD)),
    text('etc/group', lines(GROUP)),
  ];
  return { entries, libs: new Set(libs.keys()) };
}

const REGISTRY_ENTRYPOINT = `#!/bin/sh
# mirror-synth stand-in for the registry image's /entrypoint.sh: a file as the first argument
# means \`registry serve <file> ...\`, \`sh\` starts a shell, anything else is registry's arguments.
set -e
if [ -f "$1" ]; then
  exec /bin/registry serve "$@"
fi
if [ "$1" = sh ]; then
  shift
  exec /bin/sh "$@"
fi
exec /bin/registry "$@"
`;

/** The registry image's default config: filesystem storage in the volume, debug port with metrics. */
const REGISTRY_DEFAULT_CONFIG = `version: 0.1
log:
  fields:
    service: registry
storage:
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  debug:
    addr: :5001
    prometheus:
      enabled: true
      path: /metrics
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
`;

const NGINX_ENTRYPOINT = `#!/bin/sh
# mirror-synth stand-in for nginx-unprivileged's /docker-entrypoint.sh: when the command is
# nginx, source the executable *.envsh and run the executable *.sh in /docker-entrypoint.d
# (none in the stand-in), then run the command.
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
  for f in /docker-entrypoint.d/*; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    case $f in
      *.envsh) . "$f" ;;
      *.sh) "$f" ;;
    esac
  done
fi
exec "$@"
`;

/** The unprivileged image's nginx.conf: no user directive, pid and temp paths in /tmp. */
const NGINX_DEFAULT_CONF = `worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /tmp/nginx.pid;

events {
  worker_connections 1024;
}

http {
  proxy_temp_path /tmp/proxy_temp;
  client_body_temp_path /tmp/client_temp;
  fastcgi_temp_path /tmp/fastcgi_temp;
  uwsgi_temp_path /tmp/uwsgi_temp;
  scgi_temp_path /tmp/scgi_temp;

  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log /var/log/nginx/access.log;
  sendfile on;
  keepalive_timeout 65;
  include /etc/nginx/conf.d/*.conf;
}
`;

const NGINX_DEFAULT_SERVER = `server {
  listen 8080;
  server_name localhost;
  location / {
    root /usr/share/nginx/html;
    index index.html;
  }
}
`;

interface ImageSpec {
  readonly name: string;
  readonly layers: readonly Blob[];
  readonly config: Record<string, unknown>;
  readonly description: string;
}

interface Recipes {
  readonly busyboxLayer: Blob;
  readonly images: ImageSpec[];
}

/** The CA bundle layer: the system's roots and the test CA, where alpine's ca-certificates puts them. */
async function caLayer(caPem: string): Promise<Blob> {
  const roots = await readFile(SYSTEM_BUNDLE, 'utf8').catch(() => '');
  const bundle = roots + (roots.endsWith('\n') || roots === '' ? '' : '\n') + caPem.trim() + '\n';
  return memoryLayer([
    text('etc/ssl/certs/ca-certificates.crt', bundle),
    symlink('etc/ssl/cert.pem', 'certs/ca-certificates.crt'),
  ]);
}

let busyboxEntriesMemo: ReturnType<typeof busyboxEntries> | undefined;
let busyboxMemo: Promise<Blob> | undefined;
/** The busybox layer (shared by the busybox, registry, nginx and node-exporter stand-ins). */
async function busyboxLayer(): Promise<Blob> {
  busyboxMemo ??= busyboxBase().then(({ entries }) => cachedLayer('busybox', entries));
  busyboxMemo.catch(() => (busyboxMemo = undefined));
  return busyboxMemo;
}

function busyboxBase(): ReturnType<typeof busyboxEntries> {
  busyboxEntriesMemo ??= busyboxEntries();
  busyboxEntriesMemo.catch(() => (busyboxEntriesMemo = undefined));
  return busyboxEntriesMemo;
}

async function recipes(caPem: string): Promise<Recipes> {
  const [registry, mtail, nodeExporter, pause, nginx, base, ca] = await Promise.all([
    ensureTool('registry'),
    ensureTool('mtail'),
    ensureTool('node_exporter'),
    ensureTool('pause'),
    whichBinary('nginx'),
    busyboxBase(),
    caLayer(caPem),
  ]);
  const busybox = await busyboxLayer();
  // Debian's busybox 1.35 wget segfaults when given -T (a timeout), which the front's readiness
  // probe passes: the front stand-in has GNU wget first on PATH (/usr/bin), same options, same exit.
  const wget = await whichBinary('wget');
  const nginxLibs = new Map([...(await sharedLibraries(nginx)), ...(await sharedLibraries(wget))]);
  for (const soname of base.libs) nginxLibs.delete(soname);
  const mimeTypes = '/etc/nginx/mime.types';

  const [registryLayer, nginxLayer, mtailLayer, nodeExporterLayer, pauseLayer] = await Promise.all([
    cachedLayer('registry', [
      file('bin/registry', registry),
      text('entrypoint.sh', REGISTRY_ENTRYPOINT, 0o755),
      text('etc/distribution/config.yml', REGISTRY_DEFAULT_CONFIG),
      dir('var/lib/registry'),
    ]),
    cachedLayer('nginx', [
      file('usr/sbin/nginx', nginx),
      file('usr/bin/wget', wget),
      ...[...nginxLibs].map(([soname, path]) => file(`lib/${soname}`, path)),
      // the unprivileged image: nginx (101) owns its cache and config directories
      dir('etc/nginx', 0o775, 101, 0),
      dir('etc/nginx/conf.d', 0o775, 101, 0),
      text('etc/nginx/nginx.conf', NGINX_DEFAULT_CONF, 0o664, 101, 0),
      text('etc/nginx/conf.d/default.conf', NGINX_DEFAULT_SERVER, 0o664, 101, 0),
      { type: 'file', path: 'etc/nginx/mime.types', mode: 0o664, uid: 101, gid: 0, source: mimeTypes },
      dir('var/cache/nginx', 0o775, 101, 0),
      // Debian's nginx's compiled-in temp paths (the image's alpine nginx uses /var/cache/nginx)
      dir('var/lib/nginx', 0o775, 101, 0),
      dir('usr/lib/nginx/modules'),
      text(
        'usr/share/nginx/html/index.html',
        '<!DOCTYPE html>\n<title>nginx</title>\n<p>mirror-synth stand-in nginx\n',
      ),
      symlink('var/log/nginx/access.log', '/dev/stdout'),
      symlink('var/log/nginx/error.log', '/dev/stderr'),
      text('docker-entrypoint.sh', NGINX_ENTRYPOINT, 0o755),
      dir('docker-entrypoint.d'),
      text('etc/passwd', lines([...PASSWD, 'nginx:x:101:101:nginx:/var/cache/nginx:/sbin/nologin'])),
      text('etc/group', lines([...GROUP, 'nginx:x:101:nginx'])),
    ]),
    cachedLayer('mtail', [file('usr/bin/mtail', mtail), dir('tmp')]),
    cachedLayer('node-exporter', [file('bin/node_exporter', nodeExporter)]),
    cachedLayer('pause', [file('pause', pause)]),
  ]);
  const nginxVersion = /:(\d+\.\d+\.\d+)/.exec(FRONT_IMAGE)?.[1] ?? '';

  return {
    busyboxLayer: busybox,
    images: [
      {
        name: REGISTRY_IMAGE,
        layers: [busybox, registryLayer, ca],
        description: 'CNCF Distribution (tools/registry) on busybox',
        config: {
          Env: [PATH_ENV, 'OTEL_TRACES_EXPORTER=none'],
          Entrypoint: ['/entrypoint.sh'],
          Cmd: ['/etc/distribution/config.yml'],
          ExposedPorts: { '5000/tcp': {} },
          Volumes: { '/var/lib/registry': {} },
        },
      },
      {
        name: FRONT_IMAGE,
        layers: [busybox, nginxLayer, ca],
        description: "Debian's nginx on busybox",
        config: {
          User: '101',
          Env: [PATH_ENV, `NGINX_VERSION=${nginxVersion}`],
          Entrypoint: ['/docker-entrypoint.sh'],
          Cmd: ['nginx', '-g', 'daemon off;'],
          ExposedPorts: { '8080/tcp': {} },
          StopSignal: 'SIGQUIT',
        },
      },
      {
        name: FRONT_METRICS_IMAGE,
        layers: [mtailLayer],
        description: 'mtail (tools/mtail)',
        config: {
          Env: [PATH_ENV],
          Entrypoint: ['/usr/bin/mtail'],
          WorkingDir: '/tmp',
          ExposedPorts: { '3903/tcp': {} },
        },
      },
      {
        name: NODE_EXPORTER_IMAGE,
        layers: [busybox, nodeExporterLayer],
        description: 'node_exporter (tools/node-exporter) on busybox',
        config: {
          User: 'nobody',
          Env: [PATH_ENV],
          Entrypoint: ['/bin/node_exporter'],
          ExposedPorts: { '9100/tcp': {} },
        },
      },
      {
        name: NODE_AGENT_IMAGE,
        layers: [busybox],
        description: "Debian's busybox with glibc",
        config: { Env: [PATH_ENV], Cmd: ['sh'] },
      },
      {
        name: PAUSE_IMAGE,
        layers: [pauseLayer],
        description: 'the pause of tools/pause',
        config: { User: '65535:65535', Env: [PATH_ENV], Entrypoint: ['/pause'] },
      },
    ],
  };
}

/** An image's config and manifest as blobs: the manifest's digest is the image's. */
function assemble(spec: ImageSpec): { manifest: Blob; config: Blob } {
  const config = Buffer.from(
    JSON.stringify({
      created: CREATED,
      architecture: ARCH,
      os: 'linux',
      config: {
        ...spec.config,
        Labels: {
          'org.opencontainers.image.ref.name': spec.name,
          'org.opencontainers.image.description': `mirror-synth e2e stand-in for ${spec.name}: ${spec.description}`,
        },
      },
      rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.digest) }, // uncompressed: diff_id = digest
      history: spec.layers.map((_, i) => ({ created: CREATED, created_by: `mirror-synth stand-in layer ${i}` })),
    }),
  );
  const configBlob: Blob = { mediaType: MediaType.config, digest: sha256(config), size: config.length, data: config };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.manifest,
      config: descriptor(configBlob),
      layers: spec.layers.map(descriptor),
    }),
  );
  return {
    manifest: { mediaType: MediaType.manifest, digest: sha256(manifest), size: manifest.length, data: manifest },
    config: configBlob,
  };
}

const descriptor = (b: Blob): Descriptor => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });

// ---------------------------------------------------------------------------------------------
// The controller image: the archive of `npm run build:image`, unpacked once into the cache

async function controllerBlobs(workDir: string): Promise<{ manifest: Blob; blobs: Blob[] }> {
  const { archive } = await ensureControllerImage(join(workDir, 'build-image.log'));
  const s = await stat(archive);
  const key = createHash('sha256').update(`${archive}:${s.size}:${s.mtimeMs}:${s.ino}`).digest('hex').slice(0, 32);
  const layout = join(standInImagesCacheDir(), 'controller', key);
  if (
    !(await stat(join(layout, 'index.json')).then(
      () => true,
      () => false,
    ))
  ) {
    const tmp = `${layout}.${process.pid}.tmp`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await execFileAsync('tar', ['-xf', archive, '-C', tmp]);
    await rm(layout, { recursive: true, force: true });
    await rename(tmp, layout);
  }
  const blobFile = (digest: string): string => join(layout, 'blobs', ...digest.split(':'));
  const index = JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  if (index.manifests.length !== 1) throw new Error(`${archive}: expected one image, found ${index.manifests.length}`);
  const top = index.manifests[0];
  const m = JSON.parse(await readFile(blobFile(top.digest), 'utf8')) as { config: Descriptor; layers: Descriptor[] };
  const asBlob = (d: Descriptor): Blob => ({
    mediaType: d.mediaType,
    digest: d.digest,
    size: d.size,
    file: blobFile(d.digest),
  });
  return { manifest: asBlob(top), blobs: [asBlob(m.config), ...m.layers.map(asBlob)] };
}

// ---------------------------------------------------------------------------------------------
// Import

export interface ImportStandInImagesOptions {
  /** containerd 2.x's ctr (ensureTool('ctr')). */
  readonly ctr: string;
  /** containerd's socket. */
  readonly address: string;
  /** The CA the registry and nginx stand-ins trust besides the system's roots (in /etc/ssl/certs/ca-certificates.crt). */
  readonly caPem: string;
  /** Scratch space: the controller image build's log, when it has to be built. */
  readonly workDir: string;
  /** The snapshotter to unpack into: the node's CRI snapshotter. @default 'overlayfs' */
  readonly snapshotter?: string;
  /** @default 'k8s.io' */
  readonly namespace?: string;
  /** Progress lines. @default - none */
  readonly log?: (line: string) => void;
}

export interface ImportStandInImagesResult {
  /** Each image name and its manifest digest, as containerd now has them. */
  readonly images: Readonly<Record<string, string>>;
  /** The names imported by this call (none when containerd had them all already). */
  readonly imported: readonly string[];
}

/**
 * Build (or reuse) every stand-in and import those containerd does not have at the same digest,
 * in one `ctr images import --local` fed as an OCI archive on stdin, unpacked into the
 * snapshotter. A second call on the same containerd lists its images and imports nothing.
 */
export async function importStandInImages(opts: ImportStandInImagesOptions): Promise<ImportStandInImagesResult> {
  const log = opts.log ?? (() => undefined);
  const namespace = opts.namespace ?? 'k8s.io';
  const ctrArgs = ['--address', opts.address, '-n', namespace];
  await mkdir(opts.workDir, { recursive: true });

  const [{ images }, controller] = await Promise.all([recipes(opts.caPem), controllerBlobs(opts.workDir)]);
  const wanted = new Map<string, { manifest: Blob; blobs: Blob[] }>();
  for (const spec of images) {
    const { manifest, config } = assemble(spec);
    wanted.set(spec.name, { manifest, blobs: [config, ...spec.layers] });
  }
  wanted.set(CONTROLLER_IMAGE, controller);

  const have = await listImages(opts.ctr, ctrArgs);
  const missing = [...wanted].filter(([name, { manifest }]) => have.get(name) !== manifest.digest);
  const result = {
    images: Object.fromEntries([...wanted].map(([name, { manifest }]) => [name, manifest.digest])),
    imported: missing.map(([name]) => name),
  };
  if (missing.length === 0) return result;

  log(`importing ${missing.map(([name]) => name).join(', ')}`);
  const blobs = new Map<string, Blob>();
  for (const [, image] of missing) for (const b of [image.manifest, ...image.blobs]) blobs.set(b.digest, b);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: missing.map(([name, { manifest }]) => ({
        ...descriptor(manifest),
        // containerd names the image by its own annotation; the OCI one holds the tag
        annotations: { 'io.containerd.image.name': name, 'org.opencontainers.image.ref.name': name.split(':').pop() },
      })),
    }),
  );
  const archive: Entry[] = [
    text('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' })),
    text('index.json', index.toString()),
    ...[...blobs.values()].map((b): Entry =>
      b.file
        ? { type: 'file', path: `blobs/${b.digest.replace(':', '/')}`, mode: 0o644, source: b.file }
        : { type: 'file', path: `blobs/${b.digest.replace(':', '/')}`, mode: 0o644, content: b.data! },
    ),
  ];
  const args = [...ctrArgs, 'images', 'import', '--local', '--snapshotter', opts.snapshotter ?? 'overlayfs', '-'];
  const child = spawn(opts.ctr, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const output: string[] = [];
  for (const s of [child.stdout, child.stderr]) s.on('data', (d: Buffer) => output.push(d.toString()));
  const exit = new Promise<number | null>((ok, fail) => {
    child.on('error', fail);
    child.on('close', ok);
  });
  const fed = pipeline(Readable.from(tarChunks(archive)), child.stdin).catch((err: Error) => err);
  const [code, feedError] = await Promise.all([exit, fed]);
  if (code !== 0 || feedError) {
    throw new Error(
      `ctr images import of the stand-in images failed (${code !== 0 ? `exit ${code}` : feedError?.message}):\n${output.join('').trim()}`,
    );
  }
  const after = await listImages(opts.ctr, ctrArgs);
  const wrong = missing.filter(([name, { manifest }]) => after.get(name) !== manifest.digest).map(([n]) => n);
  if (wrong.length > 0) {
    throw new Error(`ctr images import ran but containerd lacks ${wrong.join(', ')}:\n${output.join('').trim()}`);
  }
  return result;
}

/** containerd's images: name -> target digest. */
async function listImages(ctr: string, ctrArgs: readonly string[]): Promise<Map<string, string>> {
  const { stdout } = await execFileAsync(ctr, [...ctrArgs, 'images', 'ls'], { maxBuffer: 16 * 1024 * 1024 });
  const images = new Map<string, string>();
  for (const line of stdout.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    const digest = cols.find((c) => c.startsWith('sha256:'));
    if (cols[0] && digest) images.set(cols[0], digest);
  }
  return images;
}

// ---------------------------------------------------------------------------------------------
// Upstream-only images a kubelet can run

export interface RunnableTestImageOptions {
  /** Repository path without host, e.g. `e2e/app`. */
  readonly repository: string;
  /** @default 'v1' */
  readonly tag?: string;
  /**
   * The image's command (its Cmd; no entrypoint). @default - a shell that sleeps an hour and
   * exits 0 on SIGTERM at once (a bare `sleep` as PID 1 ignores it: the Pod would take its whole
   * grace period to stop)
   */
  readonly cmd?: readonly string[];
  /** Content seed of the image's own layer: the same seed, the same digest. @default - random, a new digest on every call */
  readonly seed?: string;
  /** Bytes of the image's own layers together. @default 64 KiB */
  readonly payloadBytes?: number;
  /** How many layers of its own the image has, the payload split evenly among them. @default 1 */
  readonly payloadLayers?: number;
}

export const SLEEP_CMD = ['sh', '-c', 'trap "exit 0" TERM INT; sleep 3600 & wait'] as const;

/**
 * An image for a registry (RegistryClient.push), not for containerd: the busybox stand-in's
 * layer and layers of its own of pseudo-random bytes (one unless `payloadLayers`), for linux on this machine's architecture.
 */
export async function runnableTestImage(opts: RunnableTestImageOptions): Promise<TestImage> {
  const tag = opts.tag ?? 'v1';
  const seed = opts.seed ?? randomUUID();
  const base = await busyboxLayer();
  const baseData = await readFile(base.file!);
  const count = opts.payloadLayers ?? 1;
  const total = opts.payloadBytes ?? 64 * 1024;
  const own: Blob[] = [];
  for (let i = 0; i < count; i++) {
    const bytes = Math.floor(total / count) + (i < total % count ? 1 : 0);
    // the first layer keeps the one-layer image's seed and path: the same options, the same digest as before
    const suffix = i === 0 ? '' : `-${i}`;
    const payload = pseudoRandomBytes(`${opts.repository}:${tag}/${seed}${suffix}`, bytes);
    own.push(
      await memoryLayer([{ type: 'file', path: `test-image/payload${suffix}.bin`, mode: 0o644, content: payload }]),
    );
  }
  const spec: ImageSpec = {
    name: `${opts.repository}:${tag}`,
    layers: [{ ...base, data: baseData }, ...own],
    description: `a test image (seed ${seed})`,
    config: { Env: [PATH_ENV], Cmd: [...(opts.cmd ?? SLEEP_CMD)] },
  };
  const { manifest, config } = assemble(spec);
  const blobs = new Map<string, Buffer>([
    [config.digest, config.data!],
    [base.digest, baseData],
    ...own.map((l) => [l.digest, l.data!] as const),
  ]);
  const platform: PlatformImage = {
    platform: `linux/${ARCH}`,
    digest: manifest.digest,
    config: descriptor(config),
    layers: spec.layers.map(descriptor),
  };
  const indexBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: [{ ...descriptor(manifest), platform: { architecture: ARCH, os: 'linux' } }],
    }),
  );
  const digest = sha256(indexBody);
  const manifests = new Map([
    [manifest.digest, { mediaType: MediaType.manifest, body: manifest.data! }],
    [digest, { mediaType: MediaType.index, body: indexBody }],
  ]);
  const own_ = (p?: string): void => {
    if (p !== undefined && p !== platform.platform) throw new Error(`${spec.name} has no platform ${p}`);
  };
  return {
    repository: opts.repository,
    tag,
    digest,
    platforms: [platform],
    blobs,
    manifests,
    refByTag: (host) => `${host}/${opts.repository}:${tag}`,
    refByDigest: (host) => `${host}/${opts.repository}@${digest}`,
    blobDigests: (p) => {
      own_(p);
      return [config.digest, base.digest, ...own.map((l) => l.digest)];
    },
    bytes: (p) => {
      own_(p);
      return config.size + base.size + own.reduce((sum, l) => sum + l.size, 0);
    },
  };
}
