// A real S3 server on loopback for spec.objectStorage: SeaweedFS (`weed mini`, built from its Go
// module by tools/build.sh seaweedfs) with one identity and one bucket. Every port it opens is
// a reserved 127.0.0.1 port; its admin, WebDAV and Iceberg parts are off or on reserved ports too.
import type { ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { releasePorts, reservePorts } from '../primitives/ports.js';
import { spawnTracked, tail, terminate } from '../primitives/processes.js';
import { ensureTool } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';

export interface S3ServerOptions {
  readonly dir: string;
  readonly bucket: string;
  readonly accessKey: string;
  readonly secretKey: string;
}

export class S3Server {
  private constructor(
    private readonly child: ChildProcess,
    private readonly ports: readonly number[],
    /** `http://127.0.0.1:<port>`: the S3 endpoint. */
    readonly endpoint: string,
    /** The filer's HTTP address, to look at what the bucket holds without signing requests. */
    private readonly filerUrl: string,
    readonly bucket: string,
    private readonly logFile: string,
  ) {}

  static async start(opts: S3ServerOptions): Promise<S3Server> {
    const weed = await ensureTool('weed');
    await mkdir(join(opts.dir, 'data'), { recursive: true });
    const identities = join(opts.dir, 's3.json');
    await writeFile(
      identities,
      JSON.stringify({
        identities: [
          {
            name: 'mirror',
            credentials: [{ accessKey: opts.accessKey, secretKey: opts.secretKey }],
            // with Read, Write, List and Tagging alone SeaweedFS refused Distribution's PUTs (403 AccessDenied)
            actions: ['Read', 'Write', 'List', 'Tagging', 'Admin'],
          },
        ],
      }),
      { mode: 0o600 },
    );
    const ports = await reservePorts(12);
    const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc, admin, adminGrpc, debug, metrics] =
      ports as [number, number, number, number, number, number, number, number, number, number, number, number];
    const args = [
      'mini',
      `-dir=${join(opts.dir, 'data')}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-master.port=${master}`,
      `-master.port.grpc=${masterGrpc}`,
      `-volume.port=${volume}`,
      `-volume.port.grpc=${volumeGrpc}`,
      `-filer.port=${filer}`,
      `-filer.port.grpc=${filerGrpc}`,
      `-s3.port=${s3}`,
      `-s3.port.grpc=${s3Grpc}`,
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-s3.config=${identities}`,
      `-admin.port=${admin}`,
      `-admin.port.grpc=${adminGrpc}`,
      '-admin.port.legacy=0',
      '-admin.ui=false',
      '-webdav=false',
      `-debug.port=${debug}`,
      `-metricsPort=${metrics}`,
      `-bucket=${opts.bucket}`,
    ];
    const logFile = join(opts.dir, 'weed.log');
    const log = createWriteStream(logFile);
    const child = spawnTracked(weed, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.dir });
    child.stdout!.pipe(log);
    child.stderr!.pipe(log);
    const server = new S3Server(
      child,
      ports,
      `http://127.0.0.1:${s3}`,
      `http://127.0.0.1:${filer}`,
      opts.bucket,
      logFile,
    );
    try {
      // Ready when the bucket exists (mini creates it once the filer is up) and S3 answers.
      await waitFor(
        'SeaweedFS S3 with its bucket',
        async () => {
          if (child.exitCode !== null) throw new StopWaiting(`weed exited with ${child.exitCode}`);
          const bucket = await fetch(`${server.filerUrl}/buckets/${opts.bucket}/`, {
            headers: { Accept: 'application/json' },
          }).catch(() => undefined);
          const s3Up = await fetch(server.endpoint).catch(() => undefined);
          return bucket?.status === 200 && s3Up !== undefined ? true : undefined;
        },
        60_000,
        200,
      );
    } catch (err) {
      await server.stop();
      throw new Error(`${(err as Error).message}\n${await tail(logFile)}`);
    }
    return server;
  }

  /** Size of the object at `key` in the bucket (a key starts with '/'), or undefined when there is none. */
  async objectSize(key: string): Promise<number | undefined> {
    const res = await fetch(`${this.filerUrl}/buckets/${this.bucket}${key}`, { method: 'HEAD' });
    if (res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`HEAD ${key} in bucket ${this.bucket}: ${res.status}`);
    return Number(res.headers.get('content-length'));
  }

  async stop(): Promise<void> {
    // It usually exits within 2 s of SIGTERM; once, after a benchmark, not in 15 s. What it holds
    // is test data, so do not wait long.
    await terminate(this.child, 5_000);
    releasePorts(this.ports);
  }

  async log(): Promise<string> {
    return tail(this.logFile);
  }
}
