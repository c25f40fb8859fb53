// The monitoring output against a real Prometheus (built from tools/prometheus): it scrapes a
// synthesized mirror run for real (Distribution with the synthesized config.yml, and the cache
// pod's volume exporter, node_exporter from tools/node-exporter, with the container's args on
// a real tmpfs), a second mirror with the streaming fill (mirror-synth fill run as the container
// runs it, its own /metrics scraped) whose upstream starts answering 429 Too Many Requests, and
// the real controller (reconciling a good and a Stalled mirror against a real kube-apiserver),
// with the synthesized rules loaded as written. Every alert's measure
// and every dashboard query must return a series after a few pulls, "mirror down" must fire
// when the cache stops, "volume nearly full" when the volume fills, and "upstream rate-limited"
// for the mirror whose upstream answers 429, and only for it.
//
// What the test supplies in place of the Prometheus Operator: static scrape targets carrying
// the labels the PodMonitors give (job from their relabeling, namespace, pod, and the pod's
// `mirror` label through podTargetLabels): Distribution's metrics, the front's from mtail
// running the synthesized program with the front's access log, and the volume's from
// node_exporter run with the synthesized args over a real mount. The node-agent alert reads a
// real kube-state-metrics watching the mirror's synthesized objects, applied to the test API
// server; with no kubelet and no DaemonSet controller there, simulateReadyWorkloads reports the
// workloads' pods ready and the test patches the DaemonSet's status to lose a node.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { stringify } from 'yaml';

import { dashboard, DASHBOARD_PANELS } from '../../src/construct/dashboard.js';
import { REGISTRY_STORAGE_PATH } from '../../src/construct/distribution-config.js';
import {
  CACHE_JOB,
  CONTROLLER_ALERTS,
  CONTROLLER_JOB,
  FILL_JOB,
  FRONT_JOB,
  MIRROR_ALERTS,
  ruleGroups,
  VOLUME_JOB,
} from '../../src/construct/monitoring-rules.js';
import { type RunningController, startController } from '../../src/controller/controller.js';
import { synthesizeMirror } from '../../src/index.js';
import { type ControlPlane, startControlPlane } from '../support/components/control-plane.js';
import { TEST_FILL_IMAGE } from '../support/components/fill.js';
import { type KubeStateMetrics, startKubeStateMetrics } from '../support/components/kube-state-metrics.js';
import { Prometheus, promtool, type Sample } from '../support/components/prometheus.js';
import {
  startSynthesizedMirror,
  startUpstream,
  type SynthesizedMirror,
  type Upstream,
} from '../support/components/registry.js';
import { VolumeExporter, volumeExporterContainer } from '../support/components/volume-exporter.js';
import { RateLimitingProxy } from '../support/faults/rate-limiter.js';
import { buildImage, RegistryClient } from '../support/fixtures/images.js';
import { clients, createMirror, createMirrorNamespaces, getMirror, installCrd } from '../support/kube/cluster.js';
import { simulateReadyWorkloads } from '../support/kube/workload-status.js';
import { type ManifestObject } from '../support/primitives/manifest.js';
import { waitFor } from '../support/primitives/wait.js';

const NAME = 'metrics';
const NAMESPACE = 'test';
const SECRET = 'upstream-creds';
const USER = 'mirror-bot';
const PASSWORD = 'Pa55word-for-metrics';
/** The tmpfs standing for the cache volume. */
const VOLUME_MIB = 64;

/** The mirror with `spec.fill: streaming`, whose upstream (through a RateLimitingProxy) starts answering 429. */
const LIMITED = 'limited';
/** Layers of the image pulled through it. */
const LIMITED_LAYERS = [8192, 256 * 1024];

/** The `job` of the kube-state-metrics scrape (kube-prometheus-stack's). */
const KSM_JOB = 'kube-state-metrics';

/** A dashboard query as Grafana sends it with "All" selected and a 1-minute rate interval. */
function grafanaQuery(expr: string): string {
  return expr.replaceAll('$namespace', '.*').replaceAll('$mirror', '.*').replaceAll('$__rate_interval', '1m');
}

describe('monitoring: rules and dashboard against a real Prometheus', () => {
  let dir: string;
  let upstream: Upstream;
  let mirror: SynthesizedMirror;
  let prometheus: Prometheus;
  let objects: ManifestObject[];
  let controlPlane: ControlPlane;
  let controller: RunningController;
  let ksm: KubeStateMetrics;
  let stopSimulating: (() => Promise<void>) | undefined;
  let volumeExporter: VolumeExporter;
  let rateLimiter: RateLimitingProxy;
  let limited: SynthesizedMirror;
  /** What the front answered nodes for a new image while the upstream answered 429. */
  const limitedStatuses: number[] = [];
  const stalled = 'stalled-mirror';
  const nodeAgent = `registry-mirror-${NAME}`;
  const pod = `registry-mirror-${NAME}-0`;

  beforeAll(async () => {
    const binary = inject('registryBinary');
    dir = await mkdtemp(join(tmpdir(), 'ms-mon-'));
    upstream = await startUpstream({ binary, dir: join(dir, 'upstream'), username: USER, password: PASSWORD });
    objects = synthesizeMirror(
      {
        name: NAME,
        spec: { upstreamUrl: upstream.host, credentialsSecret: SECRET },
        source: 'test/e2e/monitoring.test.ts',
      },
      { namespace: NAMESPACE },
    );
    mirror = await startSynthesizedMirror({
      binary,
      dir: join(dir, 'mirror'),
      name: NAME,
      objects,
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
    });
    // the streaming mirror, its upstream the same registry through a proxy that can rate-limit
    rateLimiter = await RateLimitingProxy.start({
      target: { host: '127.0.0.1', port: upstream.port },
      ca: upstream.ca,
    });
    limited = await startSynthesizedMirror({
      binary,
      dir: join(dir, LIMITED),
      name: LIMITED,
      objects: synthesizeMirror(
        {
          name: LIMITED,
          spec: { upstreamUrl: rateLimiter.host, credentialsSecret: SECRET, fill: 'streaming' },
          source: 'test/e2e/monitoring.test.ts',
        },
        { namespace: NAMESPACE, fillImage: TEST_FILL_IMAGE },
      ),
      secrets: { [SECRET]: { username: USER, password: PASSWORD } },
      upstreamCaFile: upstream.ca.caCert,
    });
    const limitedPod = `registry-mirror-${LIMITED}-0`;
    const limitedLabels = { namespace: NAMESPACE, pod: limitedPod, mirror: LIMITED };
    volumeExporter = await VolumeExporter.start({
      dir: join(dir, 'volume-exporter'),
      objects,
      name: NAME,
      sizeMiB: VOLUME_MIB,
    });

    // the real controller, reconciling one good mirror and one whose credentials Secret is missing
    controlPlane = await startControlPlane({ controllerManager: false });
    const c = clients(controlPlane.kubeconfigPath);
    await installCrd(c);
    await createMirrorNamespaces(c, NAMESPACE);
    // the mirror's synthesized objects, as GitOps would apply them, reported ready (no kubelet
    // runs); kube-state-metrics turns their status into the series the node-agent alert reads
    for (const o of objects) {
      await c.objects.patch(o, undefined, undefined, 'mirror-synth-test', true, PatchStrategy.ServerSideApply);
    }
    stopSimulating = simulateReadyWorkloads(c.kc, NAMESPACE);
    ksm = await startKubeStateMetrics({
      dir: join(dir, 'kube-state-metrics'),
      kubeconfigPath: controlPlane.kubeconfigPath,
      resources: ['daemonsets'],
      namespaces: [NAMESPACE, `${NAMESPACE}-node`],
    });
    controller = await startController({
      kubeConfig: c.kc,
      namespace: NAMESPACE,
      metricsPort: 0,
      secondsBetweenStreams: 1,
      leaderElection: false,
      logLevel: 'warn',
    });
    await controller.running;
    await createMirror(c, 'good-mirror', { upstreamUrl: 'quay.io' });
    await createMirror(c, stalled, { upstreamUrl: 'quay.io', credentialsSecret: 'no-such-secret' });
    await waitFor(`${stalled} to be Stalled`, async () =>
      (await getMirror(c, stalled)).status?.conditions?.some((x) => x.type === 'Stalled' && x.status === 'True'),
    );

    // the mirror-down, node-agent and volume alerts as written, and copies without `for` so the
    // test need not wait 5 or 15 minutes
    const withoutFor = [
      'RegistryMirrorDown',
      'RegistryMirrorNodeAgentMissing',
      'RegistryMirrorVolumeNearlyFull',
      'RegistryMirrorUpstreamRateLimited',
    ].map((name) => MIRROR_ALERTS.find((r) => r.alert === name)!);
    prometheus = await Prometheus.start({
      dir: join(dir, 'prometheus'),
      jobs: [
        {
          job: CACHE_JOB,
          targets: [
            {
              // the `metrics` port: the front passes Distribution's /metrics on from its debug server
              address: mirror.front!.metricsUrl.replace('http://', ''),
              labels: { namespace: NAMESPACE, pod, mirror: NAME },
            },
            { address: limited.distribution.debugUrl.replace('http://', ''), labels: limitedLabels },
          ],
        },
        {
          job: FRONT_JOB,
          targets: [
            {
              address: mirror.frontMetrics!.url.replace('http://', '').replace('/metrics', ''),
              labels: { namespace: NAMESPACE, pod: `registry-mirror-${NAME}-0`, mirror: NAME },
            },
            {
              address: limited.frontMetrics!.url.replace('http://', '').replace('/metrics', ''),
              labels: limitedLabels,
            },
          ],
        },
        {
          job: FILL_JOB,
          targets: [
            {
              address: limited.front!.fill!.metricsUrl.replace('http://', '').replace('/metrics', ''),
              labels: limitedLabels,
            },
          ],
        },
        {
          job: VOLUME_JOB,
          targets: [{ address: volumeExporter.address, labels: { namespace: NAMESPACE, pod, mirror: NAME } }],
        },
        {
          job: CONTROLLER_JOB,
          targets: [
            {
              address: `127.0.0.1:${controller.metricsPort}`,
              labels: { namespace: NAMESPACE, pod: 'mirror-synth-controller-0' },
            },
          ],
        },
        { job: KSM_JOB, honorLabels: true, targets: [{ address: ksm.address, labels: {} }] },
      ],
      rules: {
        'mirror-synth.yml': ruleGroups({ 'registry-mirror': MIRROR_ALERTS, [CONTROLLER_JOB]: CONTROLLER_ALERTS }),
        'fast.yml': {
          groups: [
            {
              name: 'fast',
              rules: withoutFor.map((r) => ({
                alert: r.alert,
                expr: `${r.measure} ${r.condition}`,
                labels: { severity: r.severity, copy: 'without-for' },
                annotations: { description: r.description },
              })),
            },
          ],
        },
      },
    });

    // a few pulls through the mirror, cold (misses) then warm (hits), once Prometheus has the
    // counters' starting values (a rate needs two samples that differ)
    await waitFor('the first scrape of the mirror', async () =>
      (await prometheus.query(`up{job="${CACHE_JOB}"} == 1`)).length > 0 ? true : undefined,
    );
    const client = new RegistryClient({
      url: upstream.url,
      username: USER,
      password: PASSWORD,
      ca: upstream.ca.caCert,
    });
    const viaMirror = new RegistryClient({ url: mirror.url });
    const behindFront = new RegistryClient({ url: mirror.distribution.url });
    const viaLimited = new RegistryClient({ url: limited.url });
    const behindLimitedFront = new RegistryClient({ url: limited.distribution.url });
    try {
      for (let i = 1; i <= 3; i++) {
        const image = buildImage({ repository: `team/app${i}`, tag: '1.0', layerSizes: [4096, 64 * 1024] });
        await client.push(image);
        for (let pull = 0; pull < 3; pull++) await viaMirror.pull(image.repository, image.tag);
      }
      // requests while the upstream is down, so the error ratio has 5xx to count: the first
      // creates the code="500" series, the next (once a scrape has the first) makes it grow, as
      // rate() needs; and the tests read the rates only once a scrape has that growth (the
      // pulls and both rounds of 5xx can all fall between two scrapes, and a rate over samples
      // that never differ is 0).
      // The front turns Distribution's 5xx into 404 for nodes (so they fall back), and
      // Distribution's metrics count the 5xx: the 404 through the front, the 500 behind it.
      const scraped5xx = async () =>
        Number(
          (await prometheus.query(`sum(registry_http_requests_total{job="${CACHE_JOB}",code=~"5.."})`))[0]?.value[1] ??
            0,
        );
      await upstream.stop();
      let seen = 0;
      for (let i = 0; i < 2; i++) {
        const path = `/v2/team/app1/blobs/sha256:${String(i).repeat(64)}`;
        expect((await viaMirror.request('GET', path)).status).toBe(404);
        expect((await behindFront.request('GET', path)).status).toBeGreaterThanOrEqual(500);
        const before = seen;
        seen = await waitFor(
          i === 0 ? 'a scrape that has the first 5xx' : 'a scrape that has the later 5xx (the counter grew)',
          async () => {
            const n = await scraped5xx();
            return n > before ? n : undefined;
          },
        );
      }
      await upstream.restart();

      // the streaming mirror: an image pulled cold (the fill's misses, fetched through
      // Distribution), then warm (the front's own cache) ...
      const streamed = buildImage({ repository: 'team/streamed', tag: '1.0', layerSizes: LIMITED_LAYERS });
      await client.push(streamed);
      for (let pull = 0; pull < 3; pull++) await viaLimited.pull(streamed.repository, streamed.tag);
      // ... and one Distribution stored before the front asked for it (pulled behind the front):
      // the fill gets its blobs from Distribution's storage
      const stored = buildImage({ repository: 'team/stored', tag: '1.0', layerSizes: [16384] });
      await client.push(stored);
      await behindLimitedFront.pull(stored.repository, stored.tag);
      await viaLimited.pull(stored.repository, stored.tag);
      // ... then its upstream rate-limits it: a new image, asked for on either side of a scrape
      // (a rate needs the counter to grow between two scrapes, as for the 5xx above)
      const fresh = buildImage({ repository: 'team/fresh', tag: '1.0', layerSizes: [4096] });
      await client.push(fresh);
      rateLimiter.limited = true;
      const scraped429 = async () =>
        Number(
          (
            await prometheus.query(
              `sum(registry_http_requests_total{job="${CACHE_JOB}",mirror="${LIMITED}",code="429"})`,
            )
          )[0]?.value[1] ?? 0,
        );
      let seen429 = 0;
      for (let i = 0; i < 2; i++) {
        limitedStatuses.push(
          (
            await viaLimited.request('GET', `/v2/${fresh.repository}/manifests/${fresh.tag}`, {
              headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
            })
          ).status,
        );
        const before = seen429;
        seen429 = await waitFor(
          `a scrape with the limited mirror's 429 number ${i + 1} (it answered ${limitedStatuses.join(', ')})`,
          async () => {
            const n = await scraped429();
            return n > before ? n : undefined;
          },
        );
      }
    } finally {
      client.close();
      viaMirror.close();
      behindFront.close();
      viaLimited.close();
      behindLimitedFront.close();
    }
  });

  afterAll(async () => {
    await prometheus?.stop();
    await ksm?.stop();
    await stopSimulating?.();
    await volumeExporter?.stop();
    await limited?.dispose();
    await rateLimiter?.stop();
    await controller?.stop();
    await controlPlane?.stop();
    await mirror?.dispose();
    await upstream?.dispose();
    if (dir && !process.env.MIRROR_SYNTH_KEEP_E2E) await rm(dir, { recursive: true, force: true });
  });

  it('promtool accepts the rules as synthesized', async () => {
    const file = join(dir, 'rules-check.yml');
    await writeFile(
      file,
      stringify(ruleGroups({ 'registry-mirror': MIRROR_ALERTS, [CONTROLLER_JOB]: CONTROLLER_ALERTS }), {
        lineWidth: 0,
      }),
    );
    const out = await promtool(['check', 'rules', '--lint=all', '--lint-fatal', file]);
    expect(out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('promtool test rules: each alert fires after its `for`, with labels and messages naming the mirror', async () => {
    const rulesFile = join(dir, 'rules-test-rules.yml');
    await writeFile(rulesFile, stringify(ruleGroups({ 'registry-mirror': MIRROR_ALERTS }), { lineWidth: 0 }));
    const ns = 'kube-extra';
    const quayPod = 'registry-mirror-quay-0';
    const volumeLabels =
      `job="${VOLUME_JOB}",namespace="${ns}",mirror="quay",pod="${quayPod}",` +
      'device="/dev/sdb",fstype="ext4",mountpoint="/var/lib/registry"';
    const cases: { alert: string; labels: Record<string, string>; value: string }[] = [
      { alert: 'RegistryMirrorDown', labels: { namespace: ns, mirror: 'quay' }, value: '0' },
      {
        alert: 'RegistryMirrorNodeAgentMissing',
        labels: { namespace: ns, mirror: 'quay', daemonset: 'registry-mirror-quay' },
        value: '1',
      },
      {
        alert: 'RegistryMirrorVolumeNearlyFull',
        labels: { namespace: ns, mirror: 'quay', pod: quayPod },
        value: '5%',
      },
      // one request a minute refused with 429 since minute 1: at 6m, 6 in the last 15 minutes
      { alert: 'RegistryMirrorUpstreamRateLimited', labels: { namespace: ns, mirror: 'quay' }, value: '6' },
    ];
    const expand = (text: string, labels: Record<string, string>, value: string): string =>
      text
        .replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, l: string) => labels[l])
        .replace(/\{\{ \$value( \| humanize(Percentage)?)? \}\}/g, value);
    const rule = (name: string) => MIRROR_ALERTS.find((r) => r.alert === name)!;
    const minutes = (d: string) => Number(d.replace('m', ''));
    const test = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            {
              series: `up{job="${CACHE_JOB}",namespace="${ns}",mirror="quay",pod="${quayPod}"}`,
              values: '0x40',
            },
            {
              series: `kube_daemonset_status_desired_number_scheduled{namespace="${ns}",daemonset="registry-mirror-quay"}`,
              values: '3x40',
            },
            {
              series: `kube_daemonset_status_number_ready{namespace="${ns}",daemonset="registry-mirror-quay"}`,
              values: '2x40',
            },
            { series: `node_filesystem_avail_bytes{${volumeLabels}}`, values: '5x40' },
            { series: `node_filesystem_size_bytes{${volumeLabels}}`, values: '100x40' },
            {
              series: `registry_http_requests_total{job="${CACHE_JOB}",namespace="${ns}",mirror="quay",pod="${quayPod}",handler="manifest",method="get",code="429"}`,
              values: '0+1x40',
            },
          ],
          alert_rule_test: cases.flatMap((c) => {
            const r = rule(c.alert);
            return [
              // not yet: the condition has held for less than `for`
              { eval_time: `${minutes(r.for) - 1}m`, alertname: c.alert, exp_alerts: [] },
              {
                eval_time: `${minutes(r.for) + 1}m`,
                alertname: c.alert,
                exp_alerts: [
                  {
                    exp_labels: { ...c.labels, severity: r.severity },
                    exp_annotations: { summary: r.summary, description: expand(r.description, c.labels, c.value) },
                  },
                ],
              },
            ];
          }),
        },
      ],
    };
    const testFile = join(dir, 'rules-test.yml');
    await writeFile(testFile, stringify(test, { lineWidth: 0 }));
    const out = await promtool(['test', 'rules', testFile]);
    expect(out).toContain('SUCCESS');
  });

  it('the upstream-error measure of an idle mirror is 0, not NaN, and of a failing one its share of 5xx', async () => {
    const rulesFile = join(dir, 'rules-error-ratio.yml');
    await writeFile(rulesFile, stringify(ruleGroups({ 'registry-mirror': MIRROR_ALERTS }), { lineWidth: 0 }));
    const rule = MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorUpstreamErrors')!;
    const series = (mirror: string, code: string, values: string) => ({
      series: `registry_http_requests_total{job="${CACHE_JOB}",namespace="${NAMESPACE}",mirror="${mirror}",pod="registry-mirror-${mirror}-0",handler="blob",method="get",code="${code}"}`,
      values,
    });
    const expected = (mirror: string, value: number) => ({
      labels: `{namespace="${NAMESPACE}",mirror="${mirror}"}`,
      value,
    });
    const test = {
      rule_files: [rulesFile],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // served pulls and failed some, then nothing for longer than the rate window
            series('idle', '200', '0+10x5 50x30'),
            series('idle', '500', '0+1x5 5x30'),
            // never failed: no code="500" series at all
            series('healthy', '200', '0+10x30'),
            // 1 request in 10 fails
            series('failing', '200', '0+9x30'),
            series('failing', '500', '0+1x30'),
          ],
          promql_expr_test: [
            {
              expr: rule.measure,
              eval_time: '25m',
              exp_samples: [expected('failing', 0.1), expected('healthy', 0), expected('idle', 0)],
            },
            // and none of them fires, the failing one aside
            { expr: `${rule.measure} ${rule.condition}`, eval_time: '25m', exp_samples: [expected('failing', 0.1)] },
          ],
        },
      ],
    };
    const testFile = join(dir, 'rules-error-ratio-test.yml');
    await writeFile(testFile, stringify(test, { lineWidth: 0 }));
    const out = await promtool(['test', 'rules', testFile]);
    expect(out).toContain('SUCCESS');
  });

  it("every alert's measure returns a series per mirror after a few pulls", async () => {
    for (const rule of MIRROR_ALERTS) {
      // the node agent's series are in the node agent namespace
      const namespace = rule.alert === 'RegistryMirrorNodeAgentMissing' ? `${NAMESPACE}-node` : NAMESPACE;
      const series = await waitFor(`${rule.alert}: a series for mirror ${NAME} in ${namespace}`, async () => {
        const result = await prometheus.query(rule.measure);
        return result.find((s) => s.metric.mirror === NAME && s.metric.namespace === namespace);
      });
      expect(Number(series.value[1]), rule.alert).not.toBeNaN();
    }
    // the hit ratio saw the warm pulls
    const ratio = await prometheus.query(MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorHitRatioLow')!.measure);
    expect(Number(ratio.find((s) => s.metric.mirror === NAME)!.value[1])).toBeGreaterThan(0.3);
    // the error ratio saw the failed blob
    const errorRule = MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorUpstreamErrors')!;
    await waitFor('the error ratio to count the failed requests', async () =>
      Number((await prometheus.query(errorRule.measure)).find((s) => s.metric.mirror === NAME)?.value[1]) > 0
        ? true
        : undefined,
    );
  });

  it("the front's metrics count what nodes got from the front's own cache", async () => {
    // 3 images x 3 pulls: each blob is fetched through Distribution once, then served by nginx.
    // What nginx sent from its cache covers at least the two warm pulls of both layers of the
    // three images: blobs Distribution never saw. Wait for the last scrape to have all of it.
    const minHitBytes = 3 * 2 * (4096 + 64 * 1024);
    const front = await waitFor(`blob HITs of the front, ${minHitBytes} bytes or more`, async () => {
      const byCache: Record<string, number> = Object.fromEntries(
        (
          await prometheus.query(
            `sum by (cache) (registry_mirror_front_requests_total{job="${FRONT_JOB}",mirror="${NAME}",kind="blob",code="200"})`,
          )
        ).map((s) => [s.metric.cache, Number(s.value[1])]),
      );
      const sent = await prometheus.query(
        `sum(registry_mirror_front_sent_bytes_total{job="${FRONT_JOB}",mirror="${NAME}",kind="blob",cache="HIT"})`,
      );
      const hitBytes = Number(sent[0]?.value[1] ?? 0);
      return byCache.HIT >= 6 && hitBytes >= minHitBytes ? byCache : undefined;
    });
    expect(front.MISS).toBeGreaterThanOrEqual(3);
  });

  it("every controller alert's measure returns a series; the Stalled mirror is named", async () => {
    for (const rule of CONTROLLER_ALERTS) {
      await waitFor(`${rule.alert}: a series`, async () => {
        const result = await prometheus.query(rule.measure);
        return result.find((s) => s.metric.namespace === NAMESPACE);
      });
    }
    const stalledRule = CONTROLLER_ALERTS.find((r) => r.alert === 'RegistryMirrorStalled')!;
    // a series for each mirror (the loop above waits for one only)
    const byMirror = await waitFor('a Stalled series for both mirrors', async () => {
      const found = Object.fromEntries(
        (await prometheus.query(stalledRule.measure)).map((s) => [s.metric.mirror, Number(s.value[1])]),
      );
      return stalled in found && 'good-mirror' in found ? found : undefined;
    });
    expect(byMirror).toMatchObject({ [stalled]: 1, 'good-mirror': 0 });
    const firingNow = await prometheus.query(`${stalledRule.measure} ${stalledRule.condition}`);
    expect(firingNow.map((s) => s.metric.mirror)).toEqual([stalled]);
  });

  it('"node agent missing" measures 0 while every node runs it, fires when a node loses it', async () => {
    const rule = MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorNodeAgentMissing')!;
    const ours = (samples: Sample[]) =>
      samples.find((s) => s.metric.mirror === NAME && s.metric.namespace === `${NAMESPACE}-node`);
    // once the DaemonSet's status says two nodes (an empty status, 0 - 0, would measure 0 too)
    const desired = `kube_daemonset_status_desired_number_scheduled{namespace="${NAMESPACE}-node",daemonset="${nodeAgent}"}`;
    await waitFor(
      `kube-state-metrics to report ${nodeAgent} on two nodes`,
      async () => (await prometheus.query(`${desired} == 2`))[0],
    );
    const healthy = ours(await prometheus.query(rule.measure));
    expect(healthy?.value[1]).toBe('0');
    expect(ours(await prometheus.query(`${rule.measure} ${rule.condition}`))).toBeUndefined();

    // what the DaemonSet controller reports when one of two nodes has no ready agent pod (the
    // simulator leaves a status for the current generation alone)
    const apps = clients(controlPlane.kubeconfigPath).apps;
    const ds = await apps.readNamespacedDaemonSet({ name: nodeAgent, namespace: `${NAMESPACE}-node` });
    expect(ds.status).toMatchObject({ desiredNumberScheduled: 2, numberReady: 2 });
    await apps.patchNamespacedDaemonSetStatus(
      {
        name: nodeAgent,
        namespace: `${NAMESPACE}-node`,
        body: { status: { numberReady: 1, numberAvailable: 1, numberUnavailable: 1 } },
      },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );

    const asWritten = await waitFor(
      `${rule.alert} to fire (and, as written, to wait its for: ${rule.for})`,
      async () => {
        const all = (await prometheus.alerts()).filter((a) => a.labels.alertname === rule.alert);
        const fastCopy = all.find((a) => a.labels.copy === 'without-for' && a.labels.mirror === NAME);
        const written = all.find((a) => !a.labels.copy && a.labels.mirror === NAME);
        return fastCopy?.state === 'firing' && written ? written : undefined;
      },
    );
    expect(asWritten).toMatchObject({
      state: 'pending',
      labels: { mirror: NAME, namespace: `${NAMESPACE}-node`, daemonset: nodeAgent, severity: 'warning' },
    });
    expect(asWritten.annotations.description).toContain(`1 node(s) have no ready node agent of mirror ${NAME}`);
    // only the mirror that lost a node
    const firing = await prometheus.query(`${rule.measure} ${rule.condition}`);
    expect(firing.map((s) => s.metric.mirror)).toEqual([NAME]);
  });

  it('every dashboard query returns a series for the mirror, through the datasource variable', async () => {
    const model = dashboard() as {
      templating: { list: { name: string; type: string; query: unknown }[] };
      panels: {
        title: string;
        datasource: { uid: string };
        targets: { expr: string; datasource: { uid: string } }[];
      }[];
    };
    // the datasource variable is defined by the dashboard itself, and every panel and query uses it
    const variables = new Set(model.templating.list.map((v) => v.name));
    expect(model.templating.list.find((v) => v.name === 'datasource')).toMatchObject({
      type: 'datasource',
      query: 'prometheus',
    });
    for (const panel of model.panels) {
      for (const uid of [panel.datasource.uid, ...panel.targets.map((t) => t.datasource.uid)]) {
        expect(variables.has(uid.replace(/^\$\{(\w+)\}$/, '$1')), `${panel.title}: ${uid}`).toBe(true);
      }
    }
    // the variables' own queries find the mirror
    const mirrors = await prometheus.query(`group by (mirror) (up{job="${CACHE_JOB}",namespace=~".*"})`);
    expect(mirrors.map((s) => s.metric.mirror)).toContain(NAME);

    for (const panel of DASHBOARD_PANELS) {
      for (const target of panel.targets) {
        // the streaming fill's panels show the streaming mirror; the others the first mirror
        const shown = target.expr.includes(`job="${FILL_JOB}"`) ? LIMITED : NAME;
        const found: Sample | undefined = await waitFor(
          `panel "${panel.title}" to show ${target.legend} for mirror ${shown}`,
          async () => (await prometheus.query(grafanaQuery(target.expr))).find((s) => s.metric.mirror === shown),
        );
        expect(found, panel.title).toBeDefined();
      }
    }
  });

  it('"upstream rate-limited" fires for the mirror whose upstream answers 429, and only for it', async () => {
    expect(rateLimiter.refused).toBeGreaterThan(0);
    // nodes got no image from the mirror while it was refused (they fall back to the upstream)
    expect(limitedStatuses.every((s) => s !== 200)).toBe(true);
    const rule = MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorUpstreamRateLimited')!;
    const [fast, written] = await waitFor(`${rule.alert} to fire (and, as written, to wait its for)`, async () => {
      const all = (await prometheus.alerts()).filter((a) => a.labels.alertname === rule.alert);
      const copy = all.find((a) => a.labels.copy === 'without-for' && a.state === 'firing');
      const asWritten = all.find((a) => !a.labels.copy);
      return copy && asWritten ? [copy, asWritten] : undefined;
    });
    expect(fast.labels).toMatchObject({ mirror: LIMITED, namespace: NAMESPACE, severity: 'warning' });
    expect(fast.annotations.description).toContain(`The upstream of mirror ${LIMITED} (namespace ${NAMESPACE})`);
    expect(fast.annotations.description).toContain('spec.credentialsSecret');
    expect(written).toMatchObject({ state: 'pending', labels: { mirror: LIMITED } });
    // the other mirror measures 0: its upstream failed (5xx), it did not rate-limit
    const measured = Object.fromEntries(
      (await prometheus.query(rule.measure)).map((s) => [s.metric.mirror, Number(s.value[1])]),
    );
    expect(measured[NAME]).toBe(0);
    expect(measured[LIMITED]).toBeGreaterThan(0);
    const firing = await prometheus.query(`${rule.measure} ${rule.condition}`);
    expect(firing.map((s) => s.metric.mirror)).toEqual([LIMITED]);
    // and the panel shows it
    const panel = DASHBOARD_PANELS.find((p) => p.title === 'Upstream rate-limited')!;
    const shown = await waitFor('the rate-limited panel to show the 429s', async () => {
      const found = (await prometheus.query(grafanaQuery(panel.targets[0].expr).replace(/\[1m\]/g, '[5m]'))).find(
        (s) => s.metric.mirror === LIMITED && Number(s.value[1]) > 0,
      );
      return found;
    });
    expect(Number(shown.value[1])).toBeGreaterThan(0);
  });

  it("the streaming fill's metrics count the cold pull's misses, the stored image's hits and the bytes sent", async () => {
    const fill = `job="${FILL_JOB}",mirror="${LIMITED}"`;
    const value = async (q: string): Promise<number> => Number((await prometheus.query(q))[0]?.value[1] ?? 0);
    // the cold pull fetched both layers through Distribution (the upstream): misses; the
    // warm pulls were the front's own (nginx) and reached no fill
    const layerBytes = LIMITED_LAYERS.reduce((a, b) => a + b, 0);
    await waitFor('the fill counters of both pulls in a scrape', async () =>
      (await value(`sum(registry_mirror_fill_sent_bytes_total{${fill}})`)) >= layerBytes &&
      (await value(`sum(registry_mirror_fill_requests_total{${fill},result="hit"})`)) >= 1
        ? true
        : undefined,
    );
    // (the image's config blob is a miss too)
    expect(await value(`sum(registry_mirror_fill_requests_total{${fill},result="miss"})`)).toBeGreaterThanOrEqual(
      LIMITED_LAYERS.length,
    );
    expect(
      await value(`sum(registry_mirror_fill_fetched_bytes_total{${fill},source="distribution"})`),
    ).toBeGreaterThanOrEqual(layerBytes);
    // the stored image's blobs came from Distribution's storage (its answer has Cache-Control)
    expect(await value(`sum(registry_mirror_fill_requests_total{${fill},result="hit"})`)).toBeGreaterThanOrEqual(1);
    expect(await value(`sum(registry_mirror_fill_verification_failures_total{${fill}})`)).toBe(0);
    expect(await value(`sum(registry_mirror_fill_transfers_in_flight{${fill}})`)).toBe(0);
    // and the bytes-saved panel reads the streaming mirror too: sent to nodes (3 pulls) less fetched (1)
    const panel = DASHBOARD_PANELS.find((p) => p.title === 'Bytes saved')!;
    const saved = await prometheus.query(grafanaQuery(panel.targets[0].expr).replace(/\[1m\]/g, '[10m]'));
    expect(saved.map((s) => s.metric.mirror)).toContain(LIMITED);
  });

  it('"volume nearly full" reads the real node_exporter run as the container, and fires past 90%', async () => {
    // node_exporter ran with the container's args, only listening elsewhere and under a test rootfs
    const container = volumeExporterContainer(objects, NAME);
    const listen = (a: string) => a.startsWith('--web.listen-address=');
    expect(volumeExporter.args.filter((a) => !listen(a) && !a.startsWith('--path.rootfs='))).toEqual(
      container.args!.filter((a) => !listen(a)),
    );
    expect(container.args).toContain(`--web.listen-address=:${container.ports![0].containerPort}`);

    const rule = MIRROR_ALERTS.find((r) => r.alert === 'RegistryMirrorVolumeNearlyFull')!;
    const panel = DASHBOARD_PANELS.find((p) => p.title === 'Cache volume used')!;
    const ours = (samples: Sample[]) =>
      samples.filter((s) => s.metric.mirror === NAME && s.metric.namespace === NAMESPACE && s.metric.pod === pod);
    const free = async () => ours(await prometheus.query(rule.measure));
    const used = async () => ours(await prometheus.query(grafanaQuery(panel.targets[0].expr)));
    // one series per pod: the exporter reports the cache volume and nothing else of the pod's
    const before = await waitFor('the volume measure', async () => {
      const found = await free();
      return found.length > 0 ? found : undefined;
    });
    expect(before).toHaveLength(1);
    expect(Number(before[0].value[1])).toBeGreaterThan(0.99);
    const usedBefore = await used();
    expect(usedBefore).toHaveLength(1);
    expect(Number(usedBefore[0].value[1])).toBeLessThan(0.01);
    // mounted as the container mounts it: read-only
    const readonly = await prometheus.query(`node_filesystem_readonly{job="${VOLUME_JOB}"}`);
    expect(readonly.map((s) => [s.metric.mountpoint, s.value[1]])).toEqual([[REGISTRY_STORAGE_PATH, '1']]);

    // something fills the volume (Distribution's blobs, over days): 61 of 64 MiB
    await writeFile(join(volumeExporter.volume, 'filler'), Buffer.alloc((VOLUME_MIB - 3) * 1024 * 1024));
    const [fast, written] = await waitFor(`${rule.alert} to fire (and, as written, to wait its for)`, async () => {
      const all = (await prometheus.alerts()).filter((a) => a.labels.alertname === rule.alert);
      const copy = all.find((a) => a.labels.copy === 'without-for' && a.state === 'firing');
      const asWritten = all.find((a) => !a.labels.copy);
      return copy && asWritten ? [copy, asWritten] : undefined;
    });
    expect(fast.labels).toMatchObject({ mirror: NAME, namespace: NAMESPACE, pod, severity: 'warning' });
    expect(fast.annotations.description).toContain(`The cache volume of ${pod}, a replica of mirror ${NAME}`);
    expect(fast.annotations.description).toContain(`kubectl -n ${NAMESPACE} get pvc cache-${pod}`);
    expect(Number((await free())[0].value[1])).toBeLessThan(0.1);
    expect(Number((await used())[0].value[1])).toBeGreaterThan(0.9);
    // as written it waits its `for: 15m`
    expect(written).toMatchObject({ state: 'pending', labels: { mirror: NAME, pod } });
  });

  it('"mirror down" fires when the cache stops', async () => {
    await mirror.stop();
    const asWritten = await waitFor('RegistryMirrorDown to fire (and, as written, to wait its for: 5m)', async () => {
      const all = await prometheus.alerts();
      const fast = all.find((a) => a.labels.alertname === 'RegistryMirrorDown' && a.labels.copy === 'without-for');
      const written = all.find((a) => a.labels.alertname === 'RegistryMirrorDown' && !a.labels.copy);
      return fast?.state === 'firing' && written ? written : undefined;
    });
    // the rule as written waits its `for: 5m` before firing
    expect(asWritten).toMatchObject({
      state: 'pending',
      labels: { mirror: NAME, namespace: NAMESPACE, severity: 'critical' },
    });
    expect(asWritten.annotations.description).toContain(`mirror ${NAME} (namespace ${NAMESPACE})`);
    expect(asWritten.annotations.description).toContain(`kubectl -n ${NAMESPACE} get pods -l mirror=${NAME}`);
    // the volume exporter, up in the same pod, has a job of its own and does not hide the outage
    // (its scrapes of the last 15 s: one slow scrape on a loaded machine is not an outage)
    const volumeUp = await prometheus.query(`max_over_time(up{job="${VOLUME_JOB}"}[15s])`);
    expect(volumeUp.map((s) => [s.metric.mirror, s.value[1]])).toEqual([[NAME, '1']]);
  });
});
