import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { registryMirrorCrd } from '../../src/api/crd.js';
import { SpecError, StaleOutputError, UsageError } from '../../src/api/errors.js';
import { check } from '../../src/cli/check.js';
import { crd } from '../../src/cli/crd.js';
import { synth } from '../../src/cli/synth.js';
import { validate } from '../../src/cli/validate.js';
import { readTree } from '../../src/synth/output.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';

const repoMirrors = new URL('../../mirrors', import.meta.url).pathname;
let dir: string;
let mirrors: string;
let out: string;
const quiet = { quiet: true } as const;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'synth-'));
  mirrors = join(dir, 'mirrors');
  out = join(dir, 'dist');
  await cp(repoMirrors, mirrors, { recursive: true });
  delete process.env.NAMESPACE;
});
afterEach(async () => {
  delete process.env.NAMESPACE;
  delete process.env.NODE_AGENT_NAMESPACE;
  await rm(dir, { recursive: true, force: true });
});

describe('synth', () => {
  it('writes the CRD, the namespace, one file per mirror and a kustomization listing them; monitoring/ apart', async () => {
    const summary = await synth({ mirrors, out, ...quiet });
    expect(summary.mirrors).toEqual(['dockerhub', 'internal', 'quay']);
    const files = await readTree(out);
    expect([...files.keys()].sort()).toEqual([
      'crd.yaml',
      'kustomization.yaml',
      'mirrors/dockerhub.yaml',
      'mirrors/internal.yaml',
      'mirrors/quay.yaml',
      'monitoring/dashboard.yaml',
      'monitoring/kustomization.yaml',
      'monitoring/podmonitors.yaml',
      'monitoring/prometheusrule.yaml',
      'namespace.yaml',
    ]);
    // dist/ applies without the Prometheus Operator: its kustomization leaves monitoring/ out
    const kustomization = parseAllDocuments(files.get('kustomization.yaml')!)[0].toJS();
    expect(kustomization.resources).toEqual([
      'crd.yaml',
      'namespace.yaml',
      'mirrors/dockerhub.yaml',
      'mirrors/internal.yaml',
      'mirrors/quay.yaml',
    ]);
    const monitoring = parseAllDocuments(files.get('monitoring/kustomization.yaml')!)[0].toJS();
    expect(monitoring.resources).toEqual(['dashboard.yaml', 'podmonitors.yaml', 'prometheusrule.yaml']);
    const podMonitors = parseAllDocuments(files.get('monitoring/podmonitors.yaml')!).map((d) => d.toJS());
    expect(podMonitors.map((m) => `${m.kind}/${m.metadata.namespace}/${m.metadata.name}`)).toEqual([
      'PodMonitor/kube-extra/registry-mirror-dockerhub',
      'PodMonitor/kube-extra/registry-mirror-internal',
      'PodMonitor/kube-extra/registry-mirror-quay',
    ]);
  });

  it("writes the namespaces before the mirrors: the output one restricted, the node agents' privileged", async () => {
    await synth({ mirrors, out, ...quiet });
    const files = await readTree(out);
    const namespaces = parseAllDocuments(files.get('namespace.yaml')!).map((d) => d.toJS());
    const enforce = (n: { metadata: { labels: Record<string, string> } }) =>
      n.metadata.labels['pod-security.kubernetes.io/enforce'];
    expect(namespaces.map((n) => [n.metadata.name, enforce(n)])).toEqual([
      ['kube-extra', 'restricted'],
      ['kube-extra-node', 'privileged'],
    ]);
    expect(namespaces[0].metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
    // The annotation says why the node agent namespace is privileged.
    expect(namespaces[1].metadata.annotations['mirror-synth.k8s.osp.tech/pod-security']).toMatch(/hostPath/);
    const quay = parseAllDocuments(files.get('mirrors/quay.yaml')!).map((d) => d.toJS());
    expect(quay.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'ConfigMap/kube-extra-node/registry-mirror-quay-agent',
      'ConfigMap/kube-extra/registry-mirror-quay-config',
      'Service/kube-extra/registry-mirror-quay',
      'Service/kube-extra/registry-mirror-quay-headless',
      'NetworkPolicy/kube-extra/registry-mirror-quay',
      'StatefulSet/kube-extra/registry-mirror-quay',
      'DaemonSet/kube-extra-node/registry-mirror-quay',
    ]);
  });

  it('takes the node agent namespace from --node-agent-namespace, then NODE_AGENT_NAMESPACE', async () => {
    process.env.NODE_AGENT_NAMESPACE = 'from-env';
    const fromEnv = await synth({ mirrors, out, ...quiet });
    expect(fromEnv.nodeAgentNamespace).toBe('from-env');
    delete process.env.NODE_AGENT_NAMESPACE;
    const one = await synth({ mirrors, out, nodeAgentNamespace: 'kube-extra', ...quiet });
    expect(one.nodeAgentNamespace).toBe('kube-extra');
    const namespaces = parseAllDocuments((await readTree(out)).get('namespace.yaml')!).map((d) => d.toJS());
    expect(namespaces.map((n) => n.metadata.labels['pod-security.kubernetes.io/enforce'])).toEqual(['privileged']);
    await expect(synth({ mirrors, out, namespace: 'a'.repeat(60), ...quiet })).rejects.toThrow(
      /node agent namespace must be a DNS label of at most 63 characters, got 'a{60}-node'/,
    );
  });

  it('gives the same bytes for the same input', async () => {
    await synth({ mirrors, out, ...quiet });
    const first = await readTree(out);
    const again = await synth({ mirrors, out, ...quiet });
    expect(again.changed).toEqual([]);
    expect(await readTree(out)).toEqual(first);
  });

  it("removes a deleted mirror's file", async () => {
    await synth({ mirrors, out, ...quiet });
    await rm(join(mirrors, 'quay.yaml'));
    const summary = await synth({ mirrors, out, ...quiet });
    expect(summary.removed).toEqual(['mirrors/quay.yaml']);
    expect([...(await readTree(out)).keys()]).not.toContain('mirrors/quay.yaml');
  });

  it('leaves the output untouched when any spec is bad', async () => {
    await synth({ mirrors, out, ...quiet });
    const before = await readTree(out);
    await writeFile(join(mirrors, 'quay.yaml'), mirrorYaml('quay', '{upstreamURL: quay.io}'));
    await writeFile(join(mirrors, 'extra.yaml'), mirrorYaml('extra', '{upstreamUrl: extra.io}'));
    const err = await synth({ mirrors, out, ...quiet }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SpecError);
    expect((err as Error).message).toContain(
      `${join(mirrors, 'quay.yaml')}: mirror 'quay': spec.upstreamURL is not a known field (did you mean upstreamUrl?)`,
    );
    expect(await readTree(out)).toEqual(before);
  });

  it('honours NAMESPACE, and --namespace over it', async () => {
    process.env.NAMESPACE = 'from-env';
    await synth({ mirrors, out, ...quiet });
    expect(await readFile(join(out, 'mirrors/quay.yaml'), 'utf8')).toContain('namespace: from-env');
    await synth({ mirrors, out, namespace: 'from-flag', ...quiet });
    const text = await readFile(join(out, 'mirrors/quay.yaml'), 'utf8');
    expect(text).toContain('namespace: from-flag');
    expect(text).not.toContain('from-env');
  });

  it('refuses a namespace that is not a DNS label', async () => {
    await expect(synth({ mirrors, out, namespace: 'Kube_Extra', ...quiet })).rejects.toBeInstanceOf(UsageError);
  });

  it('refuses to replace a directory it did not write', async () => {
    await mkdir(out);
    await writeFile(join(out, 'important.txt'), 'keep me');
    await expect(synth({ mirrors, out, ...quiet })).rejects.toThrow(/refusing to replace/);
    expect(await readFile(join(out, 'important.txt'), 'utf8')).toBe('keep me');
  });

  it('refers to a credentials Secret only by name, through secretKeyRef or a secret volume', async () => {
    await writeFile(
      join(mirrors, 'private.yaml'),
      mirrorYaml('private', '{upstreamUrl: private.example.com, credentialsSecret: private-creds}'),
    );
    await synth({ mirrors, out, ...quiet });
    const text = (await readTree(out)).get('mirrors/private.yaml')!;
    const refs: string[] = [];
    const walk = (v: unknown, path: string): void => {
      if (v === 'private-creds') refs.push(path);
      else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
      else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
    };
    for (const doc of parseAllDocuments(text)) {
      const obj = doc.toJS();
      expect(obj.kind).not.toBe('Secret');
      walk(obj, obj.kind);
    }
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref).toMatch(/(secretKeyRef\.name|secret\.secretName)$/);
  });

  it('prints a one-line summary, or JSON', async () => {
    const lines: string[] = [];
    await synth({ mirrors, out, log: (l) => lines.push(l) });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^Synthesized 3 mirrors \(dockerhub, internal, quay\) into .*dist\/ for namespace kube-extra \(node agents in kube-extra-node\): 10 file\(s\) written, 0 removed\.$/,
    );
    lines.length = 0;
    await synth({ mirrors, out, json: true, log: (l) => lines.push(l) });
    expect(JSON.parse(lines[0])).toMatchObject({ namespace: 'kube-extra', changed: [], removed: [] });
  });
});

describe('warnings', () => {
  it('warns, naming the file, the mirror and the field, when a mirror with credentials keeps the default node ranges', async () => {
    await rm(mirrors, { recursive: true });
    await mkdir(mirrors);
    await writeFile(
      join(mirrors, 'a.yaml'),
      mirrorYaml('a', '{upstreamUrl: a.example.com, credentialsSecret: a-creds}'),
    );
    await writeFile(join(mirrors, 'b.yaml'), mirrorYaml('b', '{upstreamUrl: b.example.com}'));
    await writeFile(
      join(mirrors, 'c.yaml'),
      mirrorYaml(
        'c',
        '{upstreamUrl: c.example.com, credentialsSecret: c-creds, networkPolicy: {nodeCIDRs: [10.240.0.0/16]}}',
      ),
    );
    const warned: string[] = [];
    const summary = await synth({ mirrors, out, ...quiet, warn: (l) => warned.push(l) });
    // quiet silences the summary, not the warning; anonymous mirrors and set ranges get none
    expect(warned).toEqual([
      `warning: ${join(mirrors, 'a.yaml')}: mirror 'a': spec.networkPolicy.nodeCIDRs is not set, so the NetworkPolicy admits ` +
        'port 5000 from 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, where pod addresses usually are: any pod ' +
        "may pull a.example.com's private images with Secret 'a-creds'. Set it to the nodes' subnets (kubectl get nodes -o wide: INTERNAL-IP)",
    ]);
    expect(summary.warnings).toEqual([warned[0].slice('warning: '.length)]);
    warned.length = 0;
    await validate({ mirrors, ...quiet, warn: (l) => warned.push(l) });
    await check({ mirrors, out, ...quiet, warn: (l) => warned.push(l) });
    expect(warned).toHaveLength(2);
  });

  it("the repository's own mirrors get none", async () => {
    const warned: string[] = [];
    await validate({ mirrors, ...quiet, warn: (l) => warned.push(l) });
    expect(warned).toEqual([]);
  });
});

describe('check', () => {
  it('passes on fresh output and names each stale file', async () => {
    await synth({ mirrors, out, ...quiet });
    await expect(check({ mirrors, out, ...quiet })).resolves.toBeUndefined();
    await writeFile(join(mirrors, 'quay.yaml'), mirrorYaml('quay', '{upstreamUrl: quay.example.com}'));
    await writeFile(join(mirrors, 'new.yaml'), mirrorYaml('new', '{upstreamUrl: new.io}'));
    const err = (await check({ mirrors, out, ...quiet }).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(StaleOutputError);
    expect(err.message).toContain(`stale:    ${out}/mirrors/quay.yaml`);
    expect(err.message).toContain(`missing:  ${out}/mirrors/new.yaml`);
    expect(err.message).toContain(`stale:    ${out}/kustomization.yaml`);
  });

  it("the repository's own dist/ is fresh", async () => {
    const root = new URL('../..', import.meta.url).pathname;
    await expect(
      check({ mirrors: join(root, 'mirrors'), out: join(root, 'dist'), namespace: 'kube-extra', ...quiet }),
    ).resolves.toBeUndefined();
  });
});

describe('validate and crd', () => {
  it('validate lists the mirrors', async () => {
    expect(await validate({ mirrors, ...quiet })).toEqual(['dockerhub', 'internal', 'quay']);
  });

  it('crd prints the CRD as YAML or JSON', () => {
    let text = '';
    crd({ log: (t) => (text = t) });
    expect(parseAllDocuments(text)[0].toJS()).toEqual(registryMirrorCrd());
    crd({ output: 'json', log: (t) => (text = t) });
    expect(JSON.parse(text)).toEqual(registryMirrorCrd());
  });
});
