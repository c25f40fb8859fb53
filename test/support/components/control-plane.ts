// A real Kubernetes control plane for tests: etcd, kube-apiserver and (when built)
// kube-controller-manager, on free loopback ports, with everything in one temp dir.
//
// Set MIRROR_SYNTH_TEST_KUBECONFIG to run the tests against a cluster of your own instead;
// the API server of such a cluster cannot be stopped by the tests (`ownsApiServer` is false).
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { KubeConfig } from '@kubernetes/client-node';

import { reservePorts } from '../primitives/ports.js';
import { forgetOnExit, hasExited, removeOnExit, spawnTracked, tail, terminate } from '../primitives/processes.js';
import { ensureTool, hasTool } from '../primitives/tools.js';
import { StopWaiting, waitFor } from '../primitives/wait.js';

export interface ControlPlaneOptions {
  /**
   * Run kube-controller-manager (garbage collector, namespace and service account controllers).
   * @default true
   */
  readonly controllerManager?: boolean;
  /**
   * Controllers kube-controller-manager runs.
   * @default ['garbagecollector', 'namespace', 'serviceaccount']
   */
  readonly controllers?: readonly string[];
  /**
   * Keep the temp dir (logs, etcd data, kubeconfig) after stop() for debugging.
   * @default - true if MIRROR_SYNTH_KEEP_CONTROL_PLANE is set
   */
  readonly keep?: boolean;
  /** Progress lines. @default - written to stderr */
  readonly log?: (line: string) => void;
}

export interface ControlPlane {
  /** A kubeconfig with an admin (system:masters) token. */
  readonly kubeconfigPath: string;
  /** The API server URL, e.g. https://127.0.0.1:40123. */
  readonly server: string;
  /** False when the tests use MIRROR_SYNTH_TEST_KUBECONFIG: stopApiServer/startApiServer then throw. */
  readonly ownsApiServer: boolean;
  /** Whether a garbage collector runs (our kube-controller-manager, or any external cluster). */
  readonly garbageCollector: boolean;
  /** Directory holding logs of each component (undefined for an external cluster). */
  readonly logDir?: string;
  /** Stop every process and remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Stop kube-apiserver (SIGTERM, then SIGKILL after 15 s); etcd and the controller manager keep running. */
  stopApiServer(): Promise<void>;
  /** Start kube-apiserver again on the same port with the same etcd, certs and tokens; resolves when ready. */
  startApiServer(): Promise<void>;
}

const defaultControllers = ['garbagecollector', 'namespace', 'serviceaccount'];

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`[control-plane] ${line}\n`));
  const external = process.env.MIRROR_SYNTH_TEST_KUBECONFIG;
  if (external) return externalControlPlane(external, log);

  const started = Date.now();
  const [etcdBin, apiserverBin] = await Promise.all([ensureTool('etcd'), ensureTool('kube-apiserver')]);
  const wantControllerManager = opts.controllerManager ?? true;
  const controllerManagerBin = wantControllerManager ? await ensureTool('kube-controller-manager') : undefined;

  const dir = await mkdtemp(join(tmpdir(), 'mirror-synth-cp-'));
  const keep = opts.keep ?? Boolean(process.env.MIRROR_SYNTH_KEEP_CONTROL_PLANE);
  if (!keep) removeOnExit(dir);
  const logDir = join(dir, 'logs');
  await mkdir(logDir);
  await mkdir(join(dir, 'certs'));

  const children: Record<string, ChildProcess | undefined> = {};
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // the controller manager first, so it does not log a storm of connection errors
    for (const name of ['kube-controller-manager', 'kube-apiserver', 'etcd']) {
      await terminate(children[name]);
      children[name] = undefined;
    }
    if (!keep) {
      await rm(dir, { recursive: true, force: true });
      forgetOnExit(dir);
    } else {
      log(`kept ${dir}`);
    }
  };

  try {
    // etcd
    const [etcdClientPort, etcdPeerPort, apiserverPort] = await reservePorts(3);
    const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
    const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
    children.etcd = launch(
      etcdBin,
      [
        '--name=test',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=test=${peerUrl}`,
        '--log-level=warn',
        '--unsafe-no-fsync', // test data: durability is not worth the disk syncs
      ],
      join(logDir, 'etcd.log'),
    );
    await waitUntilReady('etcd', children.etcd, join(logDir, 'etcd.log'), () =>
      probe(`${etcdUrl}/health`).then((r) => r.status === 200 && r.body.includes('"health":"true"')),
    );

    // kube-apiserver
    const token = randomBytes(24).toString('hex');
    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    });
    await writeFile(join(dir, 'sa.pub'), publicKey);
    await writeFile(join(dir, 'sa.key'), privateKey, { mode: 0o600 });
    await writeFile(join(dir, 'tokens.csv'), `${token},admin,admin,"system:masters"\n`, { mode: 0o600 });
    const server = `https://127.0.0.1:${apiserverPort}`;
    const apiserverLog = join(logDir, 'kube-apiserver.log');
    const apiserverArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiserverPort}`,
      `--cert-dir=${join(dir, 'certs')}`, // it self-signs a serving cert here on first start
      `--token-auth-file=${join(dir, 'tokens.csv')}`,
      '--authorization-mode=RBAC',
      `--service-account-key-file=${join(dir, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      // /16: room for thousands of Services (the controller benchmark runs 1000 mirrors, two Services each).
      '--service-cluster-ip-range=10.0.0.0/16',
      '--enable-priority-and-fairness=false', // fewer moving parts, faster start
      // close watches (the controller manager's) on SIGTERM; otherwise shutdown waits ~60 s for them
      '--shutdown-watch-termination-grace-period=2s',
    ];
    const apiserverReady = (): Promise<boolean> => probe(`${server}/readyz`, token).then((r) => r.status === 200);
    const launchApiServer = async (): Promise<void> => {
      children['kube-apiserver'] = launch(apiserverBin, apiserverArgs, apiserverLog);
      await waitUntilReady('kube-apiserver', children['kube-apiserver'], apiserverLog, apiserverReady, 120_000);
    };
    await launchApiServer();

    // kubeconfig: token auth, trusting the CA in the self-signed serving cert's bundle
    const ca = await readFile(join(dir, 'certs', 'apiserver.crt'));
    const kubeconfigPath = join(dir, 'kubeconfig');
    await writeFile(kubeconfigPath, kubeconfig(server, ca, token), { mode: 0o600 });

    // kube-controller-manager
    if (controllerManagerBin) {
      const controllers = opts.controllers ?? defaultControllers;
      children['kube-controller-manager'] = launch(
        controllerManagerBin,
        [
          `--kubeconfig=${kubeconfigPath}`,
          `--controllers=${controllers.join(',')}`,
          '--leader-elect=false',
          '--secure-port=0', // nothing scrapes it; no serving certs or delegated auth needed
          '--use-service-account-credentials=false',
        ],
        join(logDir, 'kube-controller-manager.log'),
      );
    }

    log(
      `ready in ${((Date.now() - started) / 1000).toFixed(1)} s: ${server}` +
        ` (etcd ${etcdUrl}${controllerManagerBin ? ', kube-controller-manager' : ''}; logs ${logDir})`,
    );

    return {
      kubeconfigPath,
      server,
      ownsApiServer: true,
      garbageCollector: controllerManagerBin !== undefined,
      logDir,
      stop,
      stopApiServer: async () => {
        await terminate(children['kube-apiserver']);
        children['kube-apiserver'] = undefined;
      },
      startApiServer: async () => {
        if (stopped) throw new Error('control plane is stopped');
        if (children['kube-apiserver']) throw new Error('kube-apiserver is already running');
        await launchApiServer();
      },
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Whether startControlPlane() can run kube-controller-manager without building anything. */
export function controllerManagerBuilt(): Promise<boolean> {
  return hasTool('kube-controller-manager');
}

function externalControlPlane(path: string, log: (line: string) => void): ControlPlane {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error(`MIRROR_SYNTH_TEST_KUBECONFIG=${path}: no current cluster`);
  log(`using the cluster in MIRROR_SYNTH_TEST_KUBECONFIG: ${server}`);
  const unsupported = (): Promise<void> =>
    Promise.reject(new Error('the API server of MIRROR_SYNTH_TEST_KUBECONFIG cannot be stopped by tests'));
  return {
    kubeconfigPath: path,
    server,
    ownsApiServer: false,
    garbageCollector: true,
    stop: async () => {},
    stopApiServer: unsupported,
    startApiServer: unsupported,
  };
}

/**
 * Serve stopApiServer/startApiServer on a loopback port, so tests in vitest workers can drive
 * the control plane that globalSetup started in the main process. See apiServerRemote().
 */
export async function serveApiServerControl(cp: ControlPlane): Promise<{ url: string; close(): Promise<void> }> {
  const secret = randomBytes(16).toString('hex');
  const server = createServer((req, res) => {
    const action = req.method === 'POST' ? req.url?.replace(`/${secret}/`, '') : undefined;
    const run =
      action === 'stop' ? () => cp.stopApiServer() : action === 'start' ? () => cp.startApiServer() : undefined;
    if (!run || !req.url?.startsWith(`/${secret}/`)) {
      res.writeHead(404).end();
      return;
    }
    run().then(
      () => res.writeHead(204).end(),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/${secret}`,
    close: () => new Promise((ok) => server.close(() => ok())),
  };
}

/** stopApiServer/startApiServer of the shared control plane, from its control URL. */
export function apiServerRemote(url: string): Pick<ControlPlane, 'stopApiServer' | 'startApiServer'> {
  const call = async (action: string): Promise<void> => {
    const res = await fetch(`${url}/${action}`, { method: 'POST' });
    if (!res.ok) throw new Error(`${action} kube-apiserver: ${res.status} ${await res.text()}`);
  };
  return { stopApiServer: () => call('stop'), startApiServer: () => call('start') };
}

function kubeconfig(server: string, ca: Buffer, token: string): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster: { server, 'certificate-authority-data': ca.toString('base64') } }],
      users: [{ name: 'admin', user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'admin' } }],
      'current-context': 'test',
    },
    null,
    2,
  );
}

function launch(bin: string, args: string[], logFile: string): ChildProcess {
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawnTracked(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.pipe(out, { end: false });
  child.stderr?.pipe(out, { end: false });
  child.on('close', () => out.end()); // 'close': after the pipes are drained (data can follow 'exit')
  return child;
}

/** Wait until `ready` holds, giving up at once with the log's tail if the process exits. */
async function waitUntilReady(
  name: string,
  child: ChildProcess,
  logFile: string,
  ready: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  try {
    await waitFor(
      `${name} to be ready`,
      async () => {
        if (hasExited(child)) {
          throw new StopWaiting(`${name} exited (${child.signalCode ?? child.exitCode}):\n${await tail(logFile)}`);
        }
        return (await ready().catch(() => false)) ? true : undefined;
      },
      timeoutMs,
      200,
    );
  } catch (err) {
    if (err instanceof StopWaiting) throw new Error(err.message);
    throw new Error(`${(err as Error).message}:\n${await tail(logFile)}`);
  }
}

/** GET a URL; HTTPS without verifying the certificate (a readiness probe only). */
function probe(url: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((ok, fail) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const req = url.startsWith('https:')
      ? httpsRequest(url, { headers, rejectUnauthorized: false, timeout: 5_000 })
      : httpRequest(url, { headers, timeout: 5_000 });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}
