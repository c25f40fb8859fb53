/**
 * `mirror-synth warm`'s work (`spec.cache.pinned`): fetch each pinned image, all of it (the index,
 * every platform's manifest, each config and layer), through the cache pod's own front, so that it
 * lands in the front's cache and Distribution's store as a node's pull would put it there; check
 * every byte against its digest; and write the digests to `pinned.json` on the cache volume, which
 * eviction never removes. A round goes over the whole list; the command runs one when it starts,
 * when the list changes and at every refresh interval (tags are looked up again each round).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

import { Gauge, Registry } from 'prom-client';

/** Manifest media types a round asks for: indexes first, so a multi-platform tag gives all its platforms. */
export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export const WARM_METRIC_PREFIX = 'registry_mirror_pinned_';

/** What a pinned image is, as `/status`, the metrics and the RegistryMirror's status say it. */
export interface PinnedImageStatus {
  /** The reference as the spec names it, e.g. library/nginx:1.27. */
  readonly image: string;
  /** Every byte of it is in the cache, checked against its digest, as of the last round. */
  readonly warm: boolean;
  /** The digest the reference resolved to (an index's, for a multi-platform image). */
  readonly digest?: string;
  /** Bytes of its manifests, configs and layers (each digest once). */
  readonly size?: number;
  /** Why it is not warm. */
  readonly message?: string;
}

/** A pinned reference split: `library/nginx:1.27` is repository `library/nginx`, reference `1.27`. */
export function splitReference(image: string): { repository: string; reference: string } {
  const at = image.indexOf('@');
  if (at !== -1) return { repository: image.slice(0, at), reference: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon <= image.lastIndexOf('/')) throw new Error(`'${image}' names no tag or digest`);
  return { repository: image.slice(0, colon), reference: image.slice(colon + 1) };
}

/** The list file (`spec.cache.pinned` as the ConfigMap holds it). */
export interface PinnedList {
  readonly images: readonly string[];
  /** @default - the command's --refresh-interval */
  readonly refreshInterval?: string;
}

/** Parse the list file's JSON; a bad file throws with what is wrong. */
export function parsePinnedList(text: string): PinnedList {
  const raw = JSON.parse(text) as { images?: unknown; refreshInterval?: unknown };
  if (!Array.isArray(raw.images) || raw.images.some((i) => typeof i !== 'string'))
    throw new Error('"images" must be a list of strings');
  if (raw.refreshInterval !== undefined && typeof raw.refreshInterval !== 'string')
    throw new Error('"refreshInterval" must be a string such as 1h');
  const images = [...new Set(raw.images as string[])];
  for (const image of images) splitReference(image);
  return { images, ...(raw.refreshInterval === undefined ? {} : { refreshInterval: raw.refreshInterval }) };
}

/** `1h`, `30m`, `1h30m`, `45s` in milliseconds; throws on anything else. */
export function parseInterval(text: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(text);
  const ms = m ? (Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0)) * 1000 : 0;
  if (!m || ms <= 0) throw new Error(`an interval such as 1h, 30m or 1h30m, got '${text}'`);
  return ms;
}

interface Descriptor {
  readonly digest: string;
  readonly size?: number;
  readonly mediaType?: string;
  readonly urls?: readonly string[];
}

interface Manifest {
  readonly manifests?: readonly Descriptor[];
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
}

const notYet = (image: string): PinnedImageStatus => ({ image, warm: false, message: 'not fetched yet' });

/** A failure of one image, said for people (no URL credentials: the front needs none). */
class WarmError extends Error {}

export interface WarmerOptions {
  /** The pod's front, e.g. http://127.0.0.1:5000. */
  readonly registry: string;
  /** Where pinned.json goes (PINNED_DIGESTS_FILE on the cache volume). */
  readonly pinnedFile: string;
  /** Cut a request that receives nothing for this long. @default 60_000 */
  readonly idleTimeoutMs?: number;
  readonly log: (msg: string, fields?: Record<string, unknown>) => void;
}

interface ImageState {
  status: PinnedImageStatus;
  /** Every digest of the image when it was last resolved (kept while a later round fails). */
  digests: readonly string[];
}

export class Warmer {
  public readonly registry = new Registry();
  private images: readonly string[] = [];
  private readonly state = new Map<string, ImageState>();
  /** pinned.json's digests from before this process, kept until every image has been resolved here. */
  private carried: readonly string[] = [];
  private written: string | undefined;
  private readonly idleTimeoutMs: number;

  constructor(private readonly opts: WarmerOptions) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
    const registers = [this.registry];
    const status = (): PinnedImageStatus[] => this.status();
    const pinnedBytes = (): number => this.pinnedBytes();
    new Gauge({
      name: `${WARM_METRIC_PREFIX}image_warm`,
      help: 'Whether a pinned image is all in the cache (1) or not (0), as of the last round.',
      labelNames: ['image'],
      registers,
      collect() {
        this.reset();
        for (const s of status()) this.set({ image: s.image }, s.warm ? 1 : 0);
      },
    });
    new Gauge({
      name: `${WARM_METRIC_PREFIX}image_bytes`,
      help: "Bytes of a pinned image's manifests, configs and layers.",
      labelNames: ['image'],
      registers,
      collect() {
        this.reset();
        for (const s of status()) if (s.size !== undefined) this.set({ image: s.image }, s.size);
      },
    });
    new Gauge({
      name: `${WARM_METRIC_PREFIX}bytes`,
      help: 'Bytes the cache keeps pinned: every digest of the warm pinned images, each once.',
      registers,
      collect() {
        this.set(pinnedBytes());
      },
    });
  }

  /** Read what an earlier process pinned, so a restart unpins nothing while the upstream is down. */
  async loadPrevious(): Promise<void> {
    const text = await readFile(this.opts.pinnedFile, 'utf8').catch(() => undefined);
    if (text === undefined) return;
    try {
      const digests = (JSON.parse(text) as { digests?: unknown }).digests;
      if (Array.isArray(digests)) this.carried = digests.filter((d): d is string => typeof d === 'string');
    } catch {
      this.opts.log('pinned file unreadable, ignored', { file: this.opts.pinnedFile });
    }
  }

  /** Each listed image's status, in the list's order; one not yet tried says so. */
  status(): PinnedImageStatus[] {
    return this.images.map((image) => this.state.get(image)?.status ?? notYet(image));
  }

  private pinnedBytes(): number {
    return this.status().reduce((sum, s) => sum + (s.warm ? (s.size ?? 0) : 0), 0);
  }

  /** Set the list: images no longer on it are forgotten (and unpinned at the next write). */
  setImages(images: readonly string[]): void {
    this.images = [...images];
    for (const image of [...this.state.keys()]) if (!images.includes(image)) this.state.delete(image);
  }

  /** One round: every image on the list, one after the other; pinned.json after each. */
  async round(signal?: AbortSignal): Promise<PinnedImageStatus[]> {
    for (const image of this.images) {
      if (signal?.aborted) break;
      const started = Date.now();
      try {
        const { digest, digests, size, fetched } = await this.warmOne(image, signal);
        // pinned before it is said to be warm
        this.state.set(image, { status: this.state.get(image)?.status ?? notYet(image), digests });
        await this.writePinned();
        this.state.set(image, { status: { image, warm: true, digest, size }, digests });
        this.opts.log('pinned image warm', { image, digest, size, fetched, ms: Date.now() - started });
      } catch (err) {
        const message = err instanceof WarmError ? err.message : `${(err as Error).message}`;
        const previous = this.state.get(image);
        this.state.set(image, {
          status: {
            image,
            warm: false,
            ...(previous?.status.digest ? { digest: previous.status.digest } : {}),
            message,
          },
          digests: previous?.digests ?? [],
        });
        this.opts.log('pinned image not warm', { image, message, ms: Date.now() - started });
      }
      await this.writePinned();
    }
    if (this.images.every((i) => this.state.get(i)?.status.warm)) {
      this.carried = [];
      await this.writePinned();
    }
    return this.status();
  }

  /** pinned.json: every digest of every listed image, sorted, written whole (temp file, rename) when it changed. */
  async writePinned(): Promise<void> {
    const digests = new Set(this.carried);
    for (const image of this.images) for (const d of this.state.get(image)?.digests ?? []) digests.add(d);
    const text = `${JSON.stringify({ digests: [...digests].sort() })}\n`;
    if (text === this.written) return;
    await mkdir(dirname(this.opts.pinnedFile), { recursive: true });
    const tmp = `${this.opts.pinnedFile}.${process.pid}.tmp`;
    await writeFile(tmp, text);
    await rename(tmp, this.opts.pinnedFile);
    this.written = text;
  }

  private async warmOne(
    image: string,
    signal?: AbortSignal,
  ): Promise<{ digest: string; digests: string[]; size: number; fetched: number }> {
    const { repository, reference } = splitReference(image);
    const sizes = new Map<string, number>();
    let fetched = 0;
    const manifest = async (ref: string, depth: number): Promise<string> => {
      const { body, digest } = await this.get(repository, 'manifests', ref, signal);
      sizes.set(digest, body.length);
      fetched += body.length;
      let parsed: Manifest;
      try {
        parsed = JSON.parse(body.toString('utf8')) as Manifest;
      } catch {
        throw new WarmError(`manifest ${digest} of ${image} is not JSON`);
      }
      if (parsed.manifests) {
        if (depth > 1) throw new WarmError(`${image} nests indexes more than once`);
        for (const m of parsed.manifests) if (!sizes.has(m.digest)) await manifest(m.digest, depth + 1);
      } else {
        for (const d of [...(parsed.config ? [parsed.config] : []), ...(parsed.layers ?? [])]) {
          // foreign (non-distributable) layers are not the registry's to serve
          if (sizes.has(d.digest) || (d.urls?.length ?? 0) > 0 || /nondistributable|foreign/.test(d.mediaType ?? ''))
            continue;
          const n = await this.blob(repository, d, signal);
          sizes.set(d.digest, n);
          fetched += n;
        }
      }
      return digest;
    };
    const digest = await manifest(reference, 0);
    const size = [...sizes.values()].reduce((a, b) => a + b, 0);
    return { digest, digests: [...sizes.keys()], size, fetched };
  }

  /** A manifest, whole, checked against the digest asked for (or the one the registry names). */
  private async get(
    repository: string,
    kind: 'manifests',
    ref: string,
    signal?: AbortSignal,
  ): Promise<{ body: Buffer; digest: string }> {
    const path = `/v2/${repository}/${kind}/${ref}`;
    const res = await this.request(path, { accept: MANIFEST_ACCEPT }, signal);
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    await this.consume(path, res, (c) => {
      chunks.push(c);
      hash.update(c);
    });
    const body = Buffer.concat(chunks);
    const digest = `sha256:${hash.digest('hex')}`;
    if (ref.startsWith('sha256:') && ref !== digest) throw new WarmError(`GET ${path}: the body is ${digest}`);
    const named = res.headers.get('docker-content-digest');
    if (named && named !== digest)
      throw new WarmError(`GET ${path}: the body is ${digest}, the registry says ${named}`);
    return { body, digest };
  }

  /** A blob, streamed and thrown away as it is hashed: its length, once checked against its digest and size. */
  private async blob(repository: string, d: Descriptor, signal?: AbortSignal): Promise<number> {
    if (!d.digest.startsWith('sha256:')) throw new WarmError(`${d.digest}: only sha256 digests can be fetched`);
    const path = `/v2/${repository}/blobs/${d.digest}`;
    const res = await this.request(path, {}, signal);
    const hash = createHash('sha256');
    let n = 0;
    await this.consume(path, res, (c) => {
      hash.update(c);
      n += c.length;
    });
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== d.digest || (d.size !== undefined && n !== d.size))
      throw new WarmError(`GET ${path}: got ${n} bytes of ${got}, not ${d.size ?? '?'} bytes of ${d.digest}`);
    return n;
  }

  private async request(path: string, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    let res: Response;
    // the idle timeout until the headers; consume() applies it to the body
    const headersDue = new AbortController();
    const timer = setTimeout(
      () => headersDue.abort(new Error(`no answer for ${this.idleTimeoutMs} ms`)),
      this.idleTimeoutMs,
    );
    try {
      res = await fetch(`${this.opts.registry}${path}`, {
        headers,
        signal: signal ? AbortSignal.any([signal, headersDue.signal]) : headersDue.signal,
      });
    } catch (err) {
      const cause = headersDue.signal.aborted ? (headersDue.signal.reason as Error) : (err as Error);
      throw new WarmError(`GET ${path}: ${cause.message}`);
    } finally {
      clearTimeout(timer);
    }
    if (res.status !== 200) {
      const text = await res.text().catch(() => '');
      let code = '';
      try {
        const errors = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors ?? [];
        code = errors.map((e) => [e.code, e.message].filter(Boolean).join(': ')).join('; ');
      } catch {
        // not the registry's JSON error
      }
      throw new WarmError(`GET ${path}: ${res.status}${code ? ` (${code})` : ''}`);
    }
    return res;
  }

  /** Read a body to its end, cutting it when nothing arrives for the idle timeout. */
  private async consume(path: string, res: Response, chunk: (c: Buffer) => void): Promise<void> {
    if (!res.body) return;
    const reader = res.body.getReader();
    let timer: NodeJS.Timeout | undefined;
    const idle = (): Promise<never> =>
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new WarmError(`GET ${path}: nothing received for ${this.idleTimeoutMs} ms`)),
          this.idleTimeoutMs,
        );
      });
    try {
      for (;;) {
        const next = await Promise.race([reader.read(), idle()]);
        clearTimeout(timer);
        if (next.done) break;
        chunk(Buffer.from(next.value as Uint8Array));
      }
    } catch (err) {
      await reader.cancel().catch(() => undefined);
      throw err instanceof WarmError ? err : new WarmError(`GET ${path}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }
}
