/**
 * Option precedence, in one place: flag, then environment variable, then cdk8s.yaml, then default.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { UsageError } from './errors.js';
import { DEFAULT_CLUSTER_DOMAIN, DEFAULT_NAMESPACE } from './mirror.js';

let cdk8sYaml: Record<string, unknown> | undefined;

/** cdk8s.yaml in the working directory, if there is one. */
export function readCdk8sYaml(path = 'cdk8s.yaml'): Record<string, unknown> {
  if (cdk8sYaml !== undefined) return cdk8sYaml;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return (cdk8sYaml = {});
  }
  try {
    const value: unknown = parse(text);
    cdk8sYaml = value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch (e) {
    throw new UsageError(`${path} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  return cdk8sYaml;
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

export function resolveClusterDomain(flag?: string): string {
  return pick(flag, process.env.CLUSTER_DOMAIN, undefined, DEFAULT_CLUSTER_DOMAIN);
}

export function resolveMirrorsDir(flag?: string): string {
  return pick(flag, process.env.MIRRORS_DIR, undefined, 'mirrors');
}

/** `cdk8s synth` passes its output directory as CDK8S_OUTDIR; cdk8s.yaml's `output` is the project default. */
export function resolveOutDir(flag?: string): string {
  return pick(flag, process.env.CDK8S_OUTDIR, readCdk8sYaml().output, 'dist');
}
