/**
 * Every option's resolution, in one place: flag, then environment variable, then cdk8s.yaml,
 * then default. Commands call these with their raw flags; nothing else reads the environment
 * or cdk8s.yaml for an option.
 */
import { readFileSync } from 'node:fs';

import { parse } from 'yaml';

import { UsageError } from '../api/errors.js';
import { IMAGE_REFERENCE_PATTERN } from '../api/images.js';
import {
  ALLOWLIST_ENV,
  ALLOWLIST_KEYS,
  type AllowlistName,
  ALLOWLISTS,
  badEntries,
  badEntriesMessage,
  type MirrorPolicy,
  parseAllowlist,
} from '../api/policy.js';
import {
  DEFAULT_CLUSTER_DOMAIN,
  DEFAULT_NAMESPACE,
  DEFAULT_NODE_AGENT_IMAGE,
  DEFAULT_NODE_RUNTIME,
  DEFAULT_SECONDS_BETWEEN_STREAMS,
  defaultNodeAgentNamespace,
  FILL_IMAGE_CONFIG_KEY,
  FILL_IMAGE_ENV,
  NODE_RUNTIMES,
  type NodeRuntime,
} from '../construct/platform.js';
import { CONTROLLER_METRICS_PORT } from '../construct/ports.js';
import { CONTROLLER_DEFAULTS } from '../controller/config.js';
import { leaderTimingsProblem } from '../controller/timings.js';
import { assertChartVersion } from '../synth/helm.js';

export const DEFAULT_MIRRORS_DIR = 'mirrors';
export const DEFAULT_OUT_DIR = 'dist';

const configs = new Map<string, Record<string, unknown>>();

/** cdk8s.yaml (in the working directory unless told otherwise), or {} when there is none. Read once per path. */
export function readCdk8sYaml(path = 'cdk8s.yaml'): Record<string, unknown> {
  const cached = configs.get(path);
  if (cached !== undefined) return cached;
  let config: Record<string, unknown> = {};
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    text = undefined;
  }
  if (text !== undefined) {
    try {
      const value: unknown = parse(text);
      if (value !== null && typeof value === 'object') config = value as Record<string, unknown>;
    } catch (e) {
      throw new UsageError(`${path} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  configs.set(path, config);
  return config;
}

function pick(flag: string | undefined, env: string | undefined, config: unknown, fallback: string): string {
  if (flag !== undefined && flag !== '') return flag;
  if (env !== undefined && env !== '') return env;
  if (typeof config === 'string' && config !== '') return config;
  return fallback;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function resolveNamespace(flag?: string): string {
  const ns = pick(flag, process.env.NAMESPACE, undefined, DEFAULT_NAMESPACE);
  if (!DNS_LABEL.test(ns))
    throw new UsageError(`namespace must be a DNS label, got '${ns}' (--namespace or NAMESPACE)`);
  return ns;
}

/**
 * The node agents' namespace, the one that admits Pod Security `privileged`: --node-agent-namespace,
 * NODE_AGENT_NAMESPACE, else the output namespace with `-node` (`kube-extra-node`). The output
 * namespace itself puts everything in one `privileged` namespace.
 */
export function resolveNodeAgentNamespace(namespace: string, flag?: string): string {
  const ns = pick(flag, process.env.NODE_AGENT_NAMESPACE, undefined, defaultNodeAgentNamespace(namespace));
  if (!DNS_LABEL.test(ns))
    throw new UsageError(
      `node agent namespace must be a DNS label of at most 63 characters, got '${ns}' (--node-agent-namespace or NODE_AGENT_NAMESPACE; its default is the namespace with '-node')`,
    );
  return ns;
}

export function resolveClusterDomain(flag?: string): string {
  return pick(flag, process.env.CLUSTER_DOMAIN, undefined, DEFAULT_CLUSTER_DOMAIN);
}

/** The cluster's node container runtime: --node-runtime, NODE_RUNTIME, `nodeRuntime` in cdk8s.yaml. */
export function resolveNodeRuntime(flag?: string): NodeRuntime {
  const runtime = pick(flag, process.env.NODE_RUNTIME, readCdk8sYaml().nodeRuntime, DEFAULT_NODE_RUNTIME);
  if (!(NODE_RUNTIMES as readonly string[]).includes(runtime))
    throw new UsageError(
      `node runtime must be one of ${NODE_RUNTIMES.join(', ')}; got '${runtime}' (--node-runtime, NODE_RUNTIME or nodeRuntime in cdk8s.yaml)`,
    );
  return runtime as NodeRuntime;
}

/** `image` if it is a reference with a tag or a digest (or both), else a UsageError naming `what` and `where` it came from. */
function checkedImage(image: string, what: string, where: string): string {
  if (image.length > 512 || !new RegExp(IMAGE_REFERENCE_PATTERN).test(image))
    throw new UsageError(
      `${what} must be an image reference, [host[:port]/]repository:tag or ...@sha256:<64 hex digits>; got '${image}' (${where})`,
    );
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  if (!image.includes('@') && !lastPart.includes(':'))
    throw new UsageError(`${what} must name a tag or a digest, not the registry's latest; got '${image}' (${where})`);
  return image;
}

/**
 * The node agent's image, the platform's choice (it runs as root on every node; no spec field
 * changes it): --node-agent-image, NODE_AGENT_IMAGE, `nodeAgentImage` in cdk8s.yaml, else busybox pinned.
 */
export function resolveNodeAgentImage(flag?: string): string {
  const image = pick(flag, process.env.NODE_AGENT_IMAGE, readCdk8sYaml().nodeAgentImage, DEFAULT_NODE_AGENT_IMAGE);
  return checkedImage(
    image,
    "the node agent's image",
    '--node-agent-image, NODE_AGENT_IMAGE or nodeAgentImage in cdk8s.yaml',
  );
}

/**
 * The image mirrors with `spec.fill: streaming` run their fill from: --fill-image, FILL_IMAGE,
 * `fillImage` in cdk8s.yaml; no default (construct/platform.ts FILL_IMAGE_ENV says why). It must name a tag
 * or a digest.
 */
export function resolveFillImage(flag?: string): string | undefined {
  const image = pick(flag, process.env[FILL_IMAGE_ENV], readCdk8sYaml()[FILL_IMAGE_CONFIG_KEY], '');
  if (image === '') return undefined;
  return checkedImage(
    image,
    'the fill image',
    `--fill-image, ${FILL_IMAGE_ENV} or ${FILL_IMAGE_CONFIG_KEY} in cdk8s.yaml`,
  );
}

export function resolveMirrorsDir(flag?: string): string {
  return pick(flag, process.env.MIRRORS_DIR, undefined, DEFAULT_MIRRORS_DIR);
}

/** `cdk8s synth` passes its output directory as CDK8S_OUTDIR; cdk8s.yaml's `output` is the project default. */
export function resolveOutDir(flag?: string): string {
  return pick(flag, process.env.CDK8S_OUTDIR, readCdk8sYaml().output, DEFAULT_OUT_DIR);
}

/** A whole number of 0 or more from a flag (already parsed) or an environment variable. */
function wholeNumber(flag: number | undefined, envName: string, fallback: number, what: string): number {
  if (flag !== undefined) return flag;
  const raw = process.env[envName];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${envName} must be ${what}, got '${raw}'`);
  return n;
}

export function resolveSecondsBetweenStreams(flag?: number): number {
  return wholeNumber(flag, 'SECONDS_BETWEEN_STREAMS', DEFAULT_SECONDS_BETWEEN_STREAMS, 'a whole number of seconds');
}

/**
 * Whether the controller takes mirrors over from the original mirror-operator: --takeover, then
 * TAKEOVER (`true` or `false`), else off. Its RBAC (`controller-manifests --takeover`) must grant
 * the deletes it makes.
 */
export function resolveTakeover(flag?: boolean): boolean {
  if (flag !== undefined) return flag;
  const raw = process.env.TAKEOVER;
  if (raw === undefined || raw === '') return false;
  if (raw === 'true' || raw === 'false') return raw === 'true';
  throw new UsageError(`TAKEOVER must be true or false, got '${raw}'`);
}

export function resolveMetricsPort(flag?: number): number {
  return flag ?? CONTROLLER_METRICS_PORT;
}

/** Render threads: MIRROR_SYNTH_WORKERS (1 = the main thread only), else undefined: the render pool decides. */
export function resolveWorkers(): number | undefined {
  const raw = process.env.MIRROR_SYNTH_WORKERS;
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`MIRROR_SYNTH_WORKERS must be a whole number of 1 or more, got '${raw}'`);
  return n;
}

/** Output format: flag, then cdk8s.yaml's `synthConfig.format` (as cdk8s-cli reads it), then `plain`. */
export function resolveFormat(flag?: string): 'plain' | 'helm' {
  const synthConfig = readCdk8sYaml().synthConfig as Record<string, unknown> | undefined;
  const format = pick(flag, undefined, synthConfig?.format, 'plain');
  if (format !== 'plain' && format !== 'helm') {
    throw new UsageError(`--format must be plain or helm, got '${format}'`);
  }
  return format;
}

/** The chart version for `--format helm`: flag, then cdk8s.yaml's `synthConfig.chartVersion`. */
export function resolveChartVersion(flag?: string): string {
  const synthConfig = readCdk8sYaml().synthConfig as Record<string, unknown> | undefined;
  return assertChartVersion(pick(flag, undefined, synthConfig?.chartVersion, ''));
}

/** Where a server listens; `undefined` host means every interface. */
export interface BindAddress {
  readonly host?: string;
  readonly port: number;
  /** As given, for messages. */
  readonly text: string;
}

/**
 * A controller-runtime style bind address: `:8080`, `127.0.0.1:8080`, `[::1]:8080`; `0` turns the
 * server off (`undefined`).
 */
export function parseBindAddress(flag: string, value: string): BindAddress | undefined {
  if (value === '0') return undefined;
  return listenAddress(flag, value, ':8080 or 127.0.0.1:8080 (or 0 for off)');
}

/** A listen address that cannot be off (`mirror-synth fill --listen`): `[host]:port`. */
export function parseListenAddress(flag: string, value: string): BindAddress {
  return listenAddress(flag, value, '127.0.0.1:5003');
}

function listenAddress(flag: string, value: string, examples: string): BindAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} must be [host]:port such as ${examples}, got '${value}'`);
  const host = m[1] ?? m[2];
  return { ...(host ? { host } : {}), port, text: value };
}

/**
 * The metrics server's address: --metrics-bind-address, else --metrics-port (kept for existing
 * manifests; same as `:<port>`), else `:8080`.
 */
export function resolveMetricsBind(address?: string, port?: number): BindAddress | undefined {
  if (address !== undefined) return parseBindAddress('--metrics-bind-address', address);
  const p = resolveMetricsPort(port);
  return { port: p, text: `:${p}` };
}

/** The probes' address: --health-probe-bind-address, else --probe-port, else the metrics server's. */
export function resolveProbeBind(address?: string, port?: number): BindAddress | undefined {
  if (address !== undefined) return parseBindAddress('--health-probe-bind-address', address);
  return port === undefined ? undefined : { port, text: `:${port}` };
}

/** The allowlist flags as given: comma-separated lists. */
export interface PolicyFlags {
  readonly allowedUpstreams?: string;
  readonly allowedMasquerades?: string;
  readonly allowedImageRegistries?: string;
  readonly allowedImageDigests?: string;
  readonly allowedImagePullSecrets?: string;
  readonly allowedPriorityClasses?: string;
  readonly allowedObjectStorageEndpoints?: string;
}

/** `allowedImagePullSecrets` -> `--allowed-image-pull-secrets`. */
function allowlistFlag(list: AllowlistName): string {
  return `--${ALLOWLIST_KEYS[list].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/**
 * The allowlist (api/policy.ts), each list from its flag (`--allowed-upstreams`), else its
 * environment variable (`ALLOWED_UPSTREAMS`), else its key in cdk8s.yaml (`allowedUpstreams`, a
 * list or a comma-separated string), else unset: any value. An empty flag or variable is a list
 * of nothing, which allows none (the controller's Deployment sets the variables from the allowlist
 * ConfigMap, where an empty key means exactly that).
 */
export function resolvePolicy(flags: PolicyFlags): MirrorPolicy {
  const config = readCdk8sYaml();
  const one = (list: AllowlistName): string[] | undefined => {
    const key = ALLOWLIST_KEYS[list];
    const envName = ALLOWLIST_ENV[list];
    const flag = flags[key];
    let entries: string[] | undefined;
    let from: string;
    const env = process.env[envName];
    const fromConfig = config[key];
    if (flag !== undefined) [entries, from] = [parseAllowlist(flag), allowlistFlag(list)];
    else if (env !== undefined) [entries, from] = [parseAllowlist(env), envName];
    else if (fromConfig !== undefined && fromConfig !== null) {
      from = `${key} in cdk8s.yaml`;
      if (typeof fromConfig === 'string') entries = parseAllowlist(fromConfig);
      else if (Array.isArray(fromConfig) && fromConfig.every((e) => typeof e === 'string'))
        entries = parseAllowlist(fromConfig.join(','));
      else throw new UsageError(`${from} must be a list of strings or a comma-separated string`);
    } else return undefined;
    const bad = badEntries(list, entries);
    if (bad.length > 0) throw new UsageError(badEntriesMessage(from, list, bad));
    return entries;
  };
  return Object.fromEntries(
    ALLOWLISTS.map((list) => [list, one(list)] as const).filter(([, entries]) => entries !== undefined),
  );
}

/** Leader-election timings as given (seconds). */
export interface LeaderTimingFlags {
  readonly leaseDuration?: number;
  readonly renewDeadline?: number;
  readonly retryPeriod?: number;
}

/**
 * Leader-election timings, client-go's defaults (15 s, 10 s, 2 s) for those not given, checked as
 * client-go checks them: the Lease outlasts the renew deadline, which outlasts a jittered retry.
 */
export function resolveLeaderTimings(flags: LeaderTimingFlags): {
  leaseDurationSeconds: number;
  renewDeadlineSeconds: number;
  retryPeriodSeconds: number;
} {
  const t = {
    leaseDurationSeconds: flags.leaseDuration ?? CONTROLLER_DEFAULTS.leaseDurationSeconds,
    renewDeadlineSeconds: flags.renewDeadline ?? CONTROLLER_DEFAULTS.renewDeadlineSeconds,
    retryPeriodSeconds: flags.retryPeriod ?? CONTROLLER_DEFAULTS.retryPeriodSeconds,
  };
  const problem = leaderTimingsProblem(t.leaseDurationSeconds, t.renewDeadlineSeconds, t.retryPeriodSeconds);
  if (problem !== undefined) throw new UsageError(`--lease-duration, --renew-deadline, --retry-period: ${problem}`);
  return t;
}
