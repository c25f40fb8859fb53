// Test images built in the test itself and pushed over the OCI distribution HTTP API.
//
// A layer is an uncompressed tar (application/vnd.oci.image.layer.v1.tar) holding one file of
// deterministic pseudo-random bytes (AES-CTR keystream of a seed), so the same seed gives the
// same digest on every run and nothing compresses it away. Each image is an OCI index with
// one manifest per platform; the first layer is shared by all platforms, the others differ.
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export const MediaType = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar',
} as const;

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly platform?: { readonly os: string; readonly architecture: string };
}

export interface PlatformImage {
  /** e.g. linux/amd64 */
  readonly platform: string;
  /** Digest of this platform's image manifest. */
  readonly digest: string;
  readonly config: Descriptor;
  readonly layers: readonly Descriptor[];
}

export interface TestImage {
  /** Repository path without host, e.g. `e2e/small`. */
  readonly repository: string;
  readonly tag: string;
  /** Digest of the OCI image index (what a pull by tag resolves to). */
  readonly digest: string;
  readonly platforms: readonly PlatformImage[];
  /** Every blob (configs and layers) by digest: the content pushed. */
  readonly blobs: ReadonlyMap<string, Buffer>;
  /** Every manifest (index and per platform) by digest: exact bytes. */
  readonly manifests: ReadonlyMap<string, { mediaType: string; body: Buffer }>;
  /** `<host>/<repository>:<tag>` */
  refByTag(host: string): string;
  /** `<host>/<repository>@<index digest>` */
  refByDigest(host: string): string;
  /** The layer and config digests one platform needs. */
  blobDigests(platform: string): string[];
  /** Total bytes of those blobs. */
  bytes(platform?: string): number;
}

export interface ImageOptions {
  readonly repository: string;
  /** @default 'v1' */
  readonly tag?: string;
  /** Payload bytes of each layer (the tar adds ~1.5 KB). @default [64 KiB, 256 KiB, 1 MiB] */
  readonly layerSizes?: readonly number[];
  /** @default ['linux/amd64', 'linux/arm64'] */
  readonly platforms?: readonly string[];
  /** Content seed: same seed and sizes, same digests. @default repository:tag */
  readonly seed?: string;
}

const sha256 = (data: Buffer | string): string => 'sha256:' + createHash('sha256').update(data).digest('hex');

/** `size` deterministic pseudo-random bytes for `seed`. */
export function pseudoRandomBytes(seed: string, size: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return cipher.update(Buffer.alloc(size));
}

/** A one-file POSIX tar: header, content padded to 512, two zero blocks. */
export function tarOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  const put = (offset: number, length: number, value: string): void => {
    header.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'ascii');
  };
  const octal = (n: number, length: number): string => n.toString(8).padStart(length - 1, '0') + '\0';
  put(0, 100, name);
  put(100, 8, octal(0o644, 8));
  put(108, 8, octal(0, 8));
  put(116, 8, octal(0, 8));
  put(124, 12, octal(content.length, 12));
  put(136, 12, octal(0, 12)); // mtime: epoch, for reproducible digests
  put(148, 8, '        '); // checksum placeholder: spaces while summing
  put(156, 1, '0');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, padding, Buffer.alloc(1024)]);
}

/** Build an image (in memory) as described; nothing is pushed. */
export function buildImage(opts: ImageOptions): TestImage {
  const tag = opts.tag ?? 'v1';
  const seed = opts.seed ?? `${opts.repository}:${tag}`;
  const sizes = opts.layerSizes ?? [64 * 1024, 256 * 1024, 1024 * 1024];
  const platforms = opts.platforms ?? ['linux/amd64', 'linux/arm64'];
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { mediaType: string; body: Buffer }>();
  const addBlob = (mediaType: string, data: Buffer): Descriptor => {
    const digest = sha256(data);
    blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  };

  const platformImages: PlatformImage[] = platforms.map((platform) => {
    const [os, architecture] = platform.split('/');
    const layers = sizes.map((size, i) => {
      // Layer 0 is shared by every platform (a common base); the rest are per platform.
      const layerSeed = i === 0 ? `${seed}/layer0` : `${seed}/${platform}/layer${i}`;
      return addBlob(MediaType.layer, tarOneFile(`layer${i}.bin`, pseudoRandomBytes(layerSeed, size)));
    });
    const configJson = {
      architecture,
      os,
      config: { Labels: { 'org.opencontainers.image.title': `${opts.repository}:${tag}`, seed } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) }, // uncompressed: diff_id = digest
      history: layers.map((_, i) => ({ created_by: `mirror-synth test layer ${i}` })),
    };
    const config = addBlob(MediaType.config, Buffer.from(JSON.stringify(configJson)));
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.manifest, config, layers }));
    const digest = sha256(manifest);
    manifests.set(digest, { mediaType: MediaType.manifest, body: manifest });
    return { platform, digest, config, layers };
  });

  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.index,
      manifests: platformImages.map((p) => {
        const [os, architecture] = p.platform.split('/');
        return {
          mediaType: MediaType.manifest,
          digest: p.digest,
          size: manifests.get(p.digest)!.body.length,
          platform: { architecture, os },
        };
      }),
    }),
  );
  const digest = sha256(index);
  manifests.set(digest, { mediaType: MediaType.index, body: index });

  const forPlatform = (platform: string): PlatformImage => {
    const p = platformImages.find((x) => x.platform === platform);
    if (!p) throw new Error(`${opts.repository}:${tag} has no platform ${platform}`);
    return p;
  };
  return {
    repository: opts.repository,
    tag,
    digest,
    platforms: platformImages,
    blobs,
    manifests,
    refByTag: (host) => `${host}/${opts.repository}:${tag}`,
    refByDigest: (host) => `${host}/${opts.repository}@${digest}`,
    blobDigests: (platform) => {
      const p = forPlatform(platform);
      return [p.config.digest, ...p.layers.map((l) => l.digest)];
    },
    bytes: (platform) => {
      const digests = platform
        ? forPlatform(platform)
            .layers.map((l) => l.digest)
            .concat(forPlatform(platform).config.digest)
        : [...blobs.keys()];
      return digests.reduce((sum, d) => sum + blobs.get(d)!.length, 0);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A small OCI distribution client (push, and pulls that hash and discard)

export interface RegistryClientOptions {
  /** e.g. https://127.0.0.1:5443 */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** CA certificates to trust (the test CA): a PEM file's path or its content. */
  readonly ca?: string | Buffer;
}

export interface Response {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Talks to one registry. Answers a 401 challenge with basic auth, or fetches a bearer token
 * from the realm a `Bearer` challenge names (with the basic credentials), and retries once.
 */
export class RegistryClient {
  private readonly agent: HttpAgent;
  private authorization?: string;
  private readonly tokens = new Map<string, string>();
  private readonly ca?: string | Buffer;

  constructor(readonly opts: RegistryClientOptions) {
    this.ca = typeof opts.ca === 'string' && !opts.ca.includes('-----BEGIN') ? readFileSync(opts.ca) : opts.ca;
    this.agent = opts.url.startsWith('https:')
      ? new HttpsAgent({ keepAlive: true, ca: this.ca, maxSockets: 16 })
      : new HttpAgent({ keepAlive: true, maxSockets: 16 });
  }

  close(): void {
    this.agent.destroy();
  }

  /** A request with the body buffered. */
  async request(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: Buffer } = {},
  ): Promise<Response> {
    return this.withAuth(method, path, init, (res) => collect(res));
  }

  /**
   * GET a blob, hashing it as it streams; returns its size (nothing is kept in memory), when its
   * first body byte arrived (Date.now()), and its longest stall: the longest time without a byte,
   * from the request to the first byte or between two chunks (what a runtime's pull-progress
   * timeout watches).
   */
  async fetchBlob(
    repository: string,
    digest: string,
  ): Promise<{ digest: string; size: number; firstByteAt: number; stallMs: number }> {
    const askedAt = Date.now();
    const got = await this.withAuth('GET', `/v2/${repository}/blobs/${digest}`, {}, async (first, follow) => {
      let r = first;
      if (r.statusCode === 307 || r.statusCode === 302) {
        r.resume();
        r = await follow(String(r.headers.location));
      }
      if (r.statusCode !== 200) {
        const body = await collect(r);
        throw new RegistryError(
          `GET blob ${repository}@${digest}: ${r.statusCode} ${body.body.toString().slice(0, 300)}`,
          r.statusCode ?? 0,
        );
      }
      const hash = createHash('sha256');
      let size = 0;
      let firstByteAt = 0;
      let last = askedAt;
      let stallMs = 0;
      for await (const chunk of r as AsyncIterable<Buffer>) {
        const now = Date.now();
        firstByteAt ||= now;
        stallMs = Math.max(stallMs, now - last);
        last = now;
        hash.update(chunk);
        size += chunk.length;
      }
      return { digest: 'sha256:' + hash.digest('hex'), size, firstByteAt: firstByteAt || Date.now(), stallMs };
    });
    if (got.digest !== digest) throw new Error(`blob ${repository}@${digest} arrived with digest ${got.digest}`);
    return got;
  }

  private async withAuth<T>(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: Buffer },
    handle: (res: IncomingMessage, follow: (location: string) => Promise<IncomingMessage>) => Promise<T>,
  ): Promise<T> {
    const scopeKey = /^\/v2\/(.+?)\/(blobs|manifests)\//.exec(path)?.[1] ?? '';
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { ...init.headers };
      const auth = this.tokens.get(scopeKey) ?? this.authorization;
      if (auth) headers.authorization = auth;
      if (init.body) headers['content-length'] = String(init.body.length);
      const res = await this.send(method, new URL(path, this.opts.url), headers, init.body);
      // Without credentials a 401 goes back to the caller as it is.
      if (res.statusCode === 401 && attempt === 0 && this.opts.username !== undefined) {
        res.resume();
        await this.answerChallenge(String(res.headers['www-authenticate'] ?? ''), scopeKey);
        continue;
      }
      return handle(res, (location) => this.send('GET', new URL(location, this.opts.url), {}));
    }
  }

  private async answerChallenge(challenge: string, scopeKey: string): Promise<void> {
    const { username = '', password = '' } = this.opts;
    const basic = 'Basic ' + Buffer.from(`${username}:${password}`).toString('base64');
    if (/^basic/i.test(challenge)) {
      this.authorization = basic;
      return;
    }
    const params = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (!/^bearer/i.test(challenge) || !params.realm)
      throw new RegistryError(`unsupported challenge: ${challenge}`, 401);
    const url = new URL(params.realm);
    if (params.service) url.searchParams.set('service', params.service);
    url.searchParams.set('scope', params.scope ?? `repository:${scopeKey}:pull,push`);
    const res = await collect(await this.send('GET', url, { authorization: basic }));
    if (res.status !== 200) throw new RegistryError(`token from ${url.origin}: ${res.status}`, res.status);
    const json = JSON.parse(res.body.toString()) as { token?: string; access_token?: string };
    this.tokens.set(scopeKey, `Bearer ${json.token ?? json.access_token}`);
  }

  private send(method: string, url: URL, headers: Record<string, string>, body?: Buffer): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const fn = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = fn(
        url,
        { method, headers, agent: url.origin === new URL(this.opts.url).origin ? this.agent : undefined, ca: this.ca },
        resolve,
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  // --- push

  /** Push every blob (skipping those present), the platform manifests, then the index under its tag. */
  async push(image: TestImage): Promise<void> {
    const repo = image.repository;
    for (const [digest, data] of image.blobs) {
      const head = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`);
      if (head.status === 200) continue;
      const start = await this.request('POST', `/v2/${repo}/blobs/uploads/`);
      expectStatus(start, 202, `start upload of ${digest}`);
      const location = new URL(String(start.headers.location), this.opts.url);
      location.searchParams.set('digest', digest);
      const put = await this.request('PUT', location.pathname + location.search, {
        headers: { 'content-type': 'application/octet-stream' },
        body: data,
      });
      expectStatus(put, 201, `upload of ${digest}`);
    }
    for (const p of image.platforms) await this.putManifest(repo, p.digest, image.manifests.get(p.digest)!);
    await this.putManifest(repo, image.tag, image.manifests.get(image.digest)!);
  }

  private async putManifest(repo: string, reference: string, m: { mediaType: string; body: Buffer }): Promise<void> {
    const res = await this.request('PUT', `/v2/${repo}/manifests/${reference}`, {
      headers: { 'content-type': m.mediaType },
      body: m.body,
    });
    expectStatus(res, 201, `manifest ${repo}:${reference}`);
  }

  // --- pull

  /** GET a manifest; returns its digest (Docker-Content-Digest, checked against the bytes) and body. */
  async getManifest(
    repository: string,
    reference: string,
  ): Promise<{ digest: string; mediaType: string; body: Buffer }> {
    const res = await this.request('GET', `/v2/${repository}/manifests/${reference}`, {
      headers: { accept: [MediaType.index, MediaType.manifest].join(', ') },
    });
    expectStatus(res, 200, `GET manifest ${repository}:${reference}`);
    const digest = sha256(res.body);
    const header = res.headers['docker-content-digest'];
    if (header && header !== digest)
      throw new Error(`manifest ${repository}:${reference}: header says ${String(header)}, bytes hash to ${digest}`);
    return { digest, mediaType: String(res.headers['content-type']), body: res.body };
  }

  /**
   * What a node does on a pull: resolve the reference, pick the platform's manifest, fetch the
   * config and layers concurrently, verify every digest. Returns the index digest, the bytes read,
   * when the first byte of its largest layer arrived (Date.now()) and the longest stall of any
   * of its blobs (fetchBlob).
   */
  async pull(
    repository: string,
    reference: string,
    platform = 'linux/amd64',
  ): Promise<{ digest: string; bytes: number; firstLayerByteAt: number; stallMs: number }> {
    const top = await this.getManifest(repository, reference);
    let manifest = top;
    if (top.mediaType.includes('index') || top.mediaType.includes('manifest.list')) {
      const idx = JSON.parse(top.body.toString()) as { manifests: Descriptor[] };
      const [os, arch] = platform.split('/');
      const d = idx.manifests.find((m) => m.platform?.os === os && m.platform.architecture === arch);
      if (!d) throw new Error(`${repository}:${reference} has no ${platform}`);
      manifest = await this.getManifest(repository, d.digest);
    }
    const m = JSON.parse(manifest.body.toString()) as { config: Descriptor; layers: Descriptor[] };
    const blobs = [m.config, ...m.layers];
    const got = await Promise.all(blobs.map((d) => this.fetchBlob(repository, d.digest)));
    const largest =
      m.layers.length === 0 ? 0 : 1 + m.layers.reduce((best, d, i) => (d.size > m.layers[best].size ? i : best), 0);
    return {
      digest: top.digest,
      bytes: got.reduce((a, b) => a + b.size, 0),
      firstLayerByteAt: got[largest].firstByteAt,
      stallMs: Math.max(...got.map((g) => g.stallMs)),
    };
  }
}

/** `nodes` concurrent pulls of repository:reference from `url`, each with a client of its own, as a rollout storm does. */
export function concurrentPulls(
  url: string,
  repository: string,
  reference: string,
  nodes: number,
): Promise<Array<{ digest: string; bytes: number }>> {
  return Promise.all(
    Array.from({ length: nodes }, async () => {
      const node = new RegistryClient({ url });
      try {
        const { digest, bytes } = await node.pull(repository, reference);
        return { digest, bytes };
      } finally {
        node.close();
      }
    }),
  );
}

function expectStatus(res: Response, status: number, what: string): void {
  if (res.status !== status) {
    throw new RegistryError(
      `${what}: expected HTTP ${status}, got ${res.status}: ${res.body.toString().slice(0, 500)}`,
      res.status,
    );
  }
}

function collect(res: IncomingMessage): Promise<Response> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    res.on('error', reject);
  });
}

/** Build an image and push it to the upstream. */
export async function pushTestImage(client: RegistryClient, opts: ImageOptions): Promise<TestImage> {
  const image = buildImage(opts);
  await client.push(image);
  return image;
}
