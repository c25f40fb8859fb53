/**
 * The Helm chart layout of cdk8s-cli's `cdk8s synth --format helm`: Chart.yaml (apiVersion v2,
 * named after the working directory, as cdk8s names it), README.md, the manifests under
 * templates/ and the CRD under crds/ (Helm installs crds/ first and never templates it). No
 * kustomization: Helm lists templates itself. The manifests are the plain output's bytes;
 * anything Helm would read as a template action (`{{`) is escaped so `helm template` gives
 * them back unchanged.
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

import { stringify } from 'yaml';

import { UsageError } from '../api/errors.js';

export const HELM_CHART_API_VERSION = 'v2';

/** What cdk8s-cli writes as the chart's README.md, word for word. */
export const HELM_README =
  'This Helm chart is generated using cdk8s. Any manual changes to the chart would be discarded once cdk8s app is synthesized again with `--format helm`.';

/** SemVer 2.0.0, as semver.org gives it: Helm refuses a chart whose version is not. */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;

export interface HelmChartOptions {
  /** The chart's `version`. */
  readonly chartVersion: string;
  /** The chart's `name`. @default - the working directory's name, as cdk8s-cli does */
  readonly chartName?: string;
}

export function assertChartVersion(version: string | undefined): string {
  if (version === undefined || version === '') {
    throw new UsageError('--format helm needs --chart-version <semver> (or synthConfig.chartVersion in cdk8s.yaml)');
  }
  if (!SEMVER.test(version)) {
    throw new UsageError(`--chart-version must be a SemVer 2 version such as 1.2.3, got '${version}'`);
  }
  return version;
}

/**
 * Chart.yaml exactly as cdk8s-cli writes it (its template substitution leaves apiVersion, name
 * and version double-quoted).
 */
export function chartYaml(opts: HelmChartOptions): string {
  const name = opts.chartName ?? basename(resolve());
  return [
    `apiVersion: ${JSON.stringify(HELM_CHART_API_VERSION)}`,
    `name: ${JSON.stringify(name)}`,
    `version: ${JSON.stringify(opts.chartVersion)}`,
    stringify({ description: `Generated chart for ${name}`, type: 'application' }),
  ].join('\n');
}

/** Text Helm's template engine gives back unchanged: `{{` becomes an action printing `{{`. */
export function escapeForHelm(text: string): string {
  return text.replaceAll('{{', '{{ "{{" }}');
}

/**
 * The chart's files from dist/'s (plain layout): CustomResourceDefinitions move to crds/,
 * every other manifest to templates/ under its own path, kustomizations are dropped.
 * `exclude` leaves out paths by prefix (monitoring/, which needs the Prometheus Operator).
 */
export function helmChartFiles(
  plain: ReadonlyMap<string, string>,
  opts: HelmChartOptions,
  exclude: readonly string[] = ['monitoring/'],
): Map<string, string> {
  const files = new Map<string, string>([
    ['Chart.yaml', chartYaml(opts)],
    ['README.md', HELM_README],
  ]);
  for (const [path, text] of chartParts(plain, exclude)) files.set(path, text);
  return files;
}

/** crds/ and templates/ only: what mirror-synth writes when cdk8s-cli made the rest. */
export function chartParts(
  plain: ReadonlyMap<string, string>,
  exclude: readonly string[] = ['monitoring/'],
): Map<string, string> {
  const files = new Map<string, string>();
  for (const [path, text] of plain) {
    if (basename(path) === 'kustomization.yaml' || exclude.some((p) => path.startsWith(p))) continue;
    if (/^kind: CustomResourceDefinition$/m.test(text)) files.set(`crds/${basename(path)}`, text);
    else files.set(`templates/${path}`, escapeForHelm(text));
  }
  return files;
}

/**
 * Whether `out` is the templates/ directory of a chart cdk8s-cli is writing: `cdk8s synth
 * --format helm` writes Chart.yaml, then runs the app with CDK8S_OUTDIR=<chart>/templates.
 */
export function isCdk8sHelmTemplatesDir(out: string): boolean {
  return basename(out) === 'templates' && existsSync(join(dirname(out), 'Chart.yaml'));
}
