import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { App, Chart, Testing } from 'cdk8s';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

import { mirrorChildren } from '../../src/api/children.js';
import { SpecError } from '../../src/api/errors.js';
import type { KubeObject } from '../../src/api/kube-object.js';
import { CREDENTIALS_HASH_ANNOTATION } from '../../src/api/names.js';
import type { MirrorSpec } from '../../src/api/schema.js';
import { parseMirrorFile } from '../../src/api/validate.js';
import { FRONT_IMAGE, NODE_AGENT_IMAGE, NODE_EXPORTER_IMAGE, REGISTRY_IMAGE } from '../../src/construct/images.js';
import { RegistryMirror } from '../../src/construct/registry-mirror.js';
import { derivedSecretName } from '../../src/controller/credentials.js';
import { synthesizeMirror } from '../../src/synth/chart.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

type Obj = KubeObject & { spec?: any; data?: Record<string, string> };

function synth(
  spec: MirrorSpec,
  opts: { namespace?: string; nodeAgentNamespace?: string; credentialsHash?: string; fillImage?: string } = {},
  name = 'quay',
): Obj[] {
  return synthesizeMirror({ name, spec, source: 'test' }, opts);
}
function find(objs: Obj[], kind: string, name: string): Obj {
  const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind} ${name} in ${objs.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}
const podSpec = (o: Obj) => o.spec.template.spec;
const container = (o: Obj, name: string) => podSpec(o).containers.find((c: { name: string }) => c.name === name);
const env = (c: { env: { name: string; value?: string }[] }) => Object.fromEntries(c.env.map((e) => [e.name, e.value]));

describe('RegistryMirror construct', () => {
  it('gets defaults', () => {
    const chart = Testing.chart();
    new RegistryMirror(chart, 'Mirror', { name: 'quay', upstreamUrl: 'quay.io' });
    expect(Testing.synth(chart)).toMatchSnapshot();
  });

  it('creates the children the original operator did, all labelled mirror=<name>', () => {
    const objs = synth({ upstreamUrl: 'quay.io' });
    expect(objs.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([
      'ConfigMap/registry-mirror-quay-agent',
      'ConfigMap/registry-mirror-quay-config',
      'Service/registry-mirror-quay',
      'Service/registry-mirror-quay-headless',
      'NetworkPolicy/registry-mirror-quay',
      'StatefulSet/registry-mirror-quay',
      'DaemonSet/registry-mirror-quay',
    ]);
    for (const o of objs) {
      expect(o.metadata.labels?.mirror).toBe('quay');
      // The node agent (root, a hostPath) in a namespace of its own; the rest in the output namespace.
      const agent = o.metadata.name === 'registry-mirror-quay-agent' || o.kind === 'DaemonSet';
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(agent ? 'kube-extra-node' : 'kube-extra');
    }
  });

  it('creates only the children mirrorChildren lists, which the name-collision check compares', () => {
    // every fixture (together every optional field), plus one with credentials
    const fixtures = new URL('../fixtures/mirrors', import.meta.url).pathname;
    const inputs = readdirSync(fixtures).flatMap((f) => parseMirrorFile(readFileSync(join(fixtures, f), 'utf8'), f));
    inputs.push({ name: 'creds', spec: { upstreamUrl: 'quay.io', credentialsSecret: 's' }, source: 'test' });
    for (const input of inputs) {
      const listed = mirrorChildren(input.name).map((c) => `${c.kind}/${c.name}`);
      for (const o of synthesizeMirror(input)) expect(listed, input.name).toContain(`${o.kind}/${o.metadata.name}`);
      // and the controller's derived credentials Secret
      expect(listed).toContain(`Secret/${derivedSecretName(input.name)}`);
    }
  });

  it('honours the namespace and the node agent namespace', () => {
    const inNs = (opts: { namespace: string; nodeAgentNamespace?: string }) =>
      Object.fromEntries(synth({ upstreamUrl: 'quay.io' }, opts).map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    const split = inNs({ namespace: 'mirrors' });
    expect(split['StatefulSet/registry-mirror-quay'].metadata.namespace).toBe('mirrors');
    expect(split['DaemonSet/registry-mirror-quay'].metadata.namespace).toBe('mirrors-node');
    expect(split['ConfigMap/registry-mirror-quay-agent'].metadata.namespace).toBe('mirrors-node');
    // The agent finds the Service in the output namespace, by DNS: no service-link fallback across namespaces.
    const agentEnv = (ds: KubeObject) =>
      (ds.spec as { template: { spec: { containers: { env: { name: string; value: string }[] }[] } } }).template.spec
        .containers[0].env;
    expect(agentEnv(split['DaemonSet/registry-mirror-quay'])).toContainEqual({
      name: 'SERVICE_NAME',
      value: 'registry-mirror-quay.mirrors.svc.cluster.local',
    });
    expect(agentEnv(split['DaemonSet/registry-mirror-quay']).map((e) => e.name)).not.toContain('SERVICE_HOST_VAR');
    const one = inNs({ namespace: 'mirrors', nodeAgentNamespace: 'mirrors' });
    for (const o of Object.values(one)) expect(o.metadata.namespace).toBe('mirrors');
    expect(agentEnv(one['DaemonSet/registry-mirror-quay'])).toContainEqual({
      name: 'SERVICE_HOST_VAR',
      value: 'REGISTRY_MIRROR_QUAY_SERVICE_HOST',
    });
  });

  it('runs Distribution in proxy mode against the upstream with a config holding no secret', () => {
    const objs = synth({ upstreamUrl: 'quay.io', credentialsSecret: 'quay-creds' });
    const config = find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['config.yml'];
    expect(config).toContain('remoteurl: https://quay.io');
    expect(config).not.toMatch(/username|password/);
    // Credentials come from the helper reading the Secret as a volume, not from env vars.
    expect(config).toContain('command: /etc/distribution/credential-helper.sh');
    expect(config).toContain('lifetime: 30s');
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    const registry = container(sts, 'registry');
    expect(registry.image).toBe(REGISTRY_IMAGE);
    expect(registry.env.filter((e: { valueFrom?: unknown }) => e.valueFrom)).toEqual([]);
    expect(podSpec(sts).volumes).toContainEqual({
      name: 'credentials',
      secret: { secretName: 'quay-creds', defaultMode: 0o440 },
    });
    expect(registry.volumeMounts).toContainEqual({
      name: 'credentials',
      mountPath: '/etc/mirror-synth/credentials',
      readOnly: true,
    });
  });

  describe('with spec.objectStorage.s3', () => {
    const configOf = (objs: Obj[]) =>
      parseYaml(find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['config.yml']) as {
        storage: Record<string, unknown>;
        proxy: { ttl: string };
      };

    it('keeps the cache in the bucket under a per-mirror prefix, blobs served through the front', () => {
      const objs = synth({
        upstreamUrl: 'quay.io',
        replicas: 3,
        objectStorage: { s3: { bucket: 'cache', region: 'us-east-1', endpoint: 'http://s3.storage:8333/' } },
      });
      const config = configOf(objs);
      expect(config.storage.s3).toEqual({
        bucket: 'cache',
        region: 'us-east-1',
        regionendpoint: 'http://s3.storage:8333',
        forcepathstyle: true,
        rootdirectory: '/registry-mirror/quay',
      });
      expect(config.storage.filesystem).toBeUndefined();
      expect(config.storage.redirect).toEqual({ disable: true });
      // no per-replica memory of what the bucket holds, no TTL state file for replicas to overwrite
      expect(config.storage.cache).toBeUndefined();
      expect(config.proxy.ttl).toBe('0s');
      // and the volume is the front's: it may use most of it (25 % when Distribution shares it)
      const nginx = find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['nginx.conf'];
      const shared = find(synth({ upstreamUrl: 'quay.io' }), 'ConfigMap', 'registry-mirror-quay-config').data![
        'nginx.conf'
      ];
      const maxSize = (conf: string) => Number(/max_size=(\d+)m/.exec(conf)?.[1]);
      expect(maxSize(nginx)).toBeGreaterThan(3 * maxSize(shared));
    });

    it('addresses AWS by host name unless told otherwise, and honours the prefix given', () => {
      const config = configOf(
        synth({
          upstreamUrl: 'quay.io',
          objectStorage: { s3: { bucket: 'c', region: 'eu-west-1', rootDirectory: '/m' } },
        }),
      );
      expect(config.storage.s3).toEqual({
        bucket: 'c',
        region: 'eu-west-1',
        forcepathstyle: false,
        rootdirectory: '/m',
      });
    });

    it("takes the bucket's key from the Secret as env, never as a value", () => {
      const objs = synth({
        upstreamUrl: 'quay.io',
        objectStorage: { s3: { bucket: 'cache', region: 'us-east-1', credentialsSecret: 'bucket-key' } },
      });
      const registry = container(find(objs, 'StatefulSet', 'registry-mirror-quay'), 'registry');
      expect(registry.env.filter((e: { valueFrom?: unknown }) => e.valueFrom)).toEqual([
        { name: 'AWS_ACCESS_KEY_ID', valueFrom: { secretKeyRef: { name: 'bucket-key', key: 'accessKey' } } },
        { name: 'AWS_SECRET_ACCESS_KEY', valueFrom: { secretKeyRef: { name: 'bucket-key', key: 'secretKey' } } },
      ]);
      // without a Secret: the SDK's own chain (a pod identity), and no key env at all
      const plain = synth({ upstreamUrl: 'quay.io', objectStorage: { s3: { bucket: 'cache', region: 'us-east-1' } } });
      expect(JSON.stringify(plain)).not.toContain('AWS_');
    });
  });

  it('runs anonymously when no credentialsSecret is set: the helper answers with no credentials, no Secret is mounted', () => {
    const objs = synth({ upstreamUrl: 'quay.io' });
    const cm = find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!;
    expect(Object.keys(cm).sort()).toEqual(['config.yml', 'credential-helper.sh', 'front.mtail', 'nginx.conf']);
    // proxy.exec for every mirror: without it Distribution calls the upstream at start and panics when it is down
    expect(cm['config.yml']).toContain('command: /etc/distribution/credential-helper.sh');
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    expect(JSON.stringify(podSpec(sts))).not.toContain('secret');
    expect(container(sts, 'registry').env.map((e: { name: string }) => e.name)).not.toContain('CREDENTIALS_DIR');
  });

  it('puts the front on the port nodes pull from, Distribution behind it on loopback', () => {
    const objs = synth({ upstreamUrl: 'quay.io' });
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    expect(podSpec(sts).containers.map((c: { name: string }) => c.name)).toEqual([
      'front',
      'registry',
      'front-metrics',
      'volume-exporter',
    ]);
    const front = container(sts, 'front');
    expect(front.image).toBe(FRONT_IMAGE);
    // and Distribution's metrics, passed on from its debug server, which listens on loopback only
    expect(front.ports).toEqual([
      { name: 'http', containerPort: 5000 },
      { name: 'metrics', containerPort: 5001 },
    ]);
    expect(container(sts, 'registry').ports).toEqual([{ name: 'registry', containerPort: 5002 }]);
    expect(front.readinessProbe.exec.command[2]).toContain('/mirror-synth/ready');
    expect(find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['config.yml']).toContain(
      'addr: 127.0.0.1:5002',
    );
    expect(find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['config.yml']).toContain(
      'addr: 127.0.0.1:5004',
    );
    expect(find(objs, 'Service', 'registry-mirror-quay').spec.ports).toEqual([
      { name: 'http', port: 5000, targetPort: 'http' },
    ]);
    // the front and Distribution share the cache volume
    for (const name of ['front', 'registry'])
      expect(container(sts, name).volumeMounts).toContainEqual({ name: 'cache', mountPath: '/var/lib/registry' });
  });

  it('spec.fill streaming: runs mirror-synth fill from the mirror-synth image between the front and Distribution', () => {
    const fillImage = `registry.example.com/platform/mirror-synth:${pkg.version}`;
    const objs = synth({ upstreamUrl: 'quay.io', fill: 'streaming', imageRegistry: 'harbor.local/hub' }, { fillImage });
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    expect(podSpec(sts).containers.map((c: { name: string }) => c.name)).toEqual([
      'front',
      'registry',
      'fill',
      'keeper',
      'front-metrics',
      'volume-exporter',
    ]);
    const fill = container(sts, 'fill');
    // the platform's image as given: spec.imageRegistry moves the other images, not this one
    expect(fill.image).toBe(fillImage);
    expect(container(sts, 'registry').image).toBe('harbor.local/hub/library/registry:3.1.2');
    // the image's entrypoint is mirror-synth; the fill listens where the front sends its misses
    expect(fill.args).toEqual([
      'fill',
      '--listen',
      '127.0.0.1:5003',
      '--distribution',
      'http://127.0.0.1:5002',
      '--spool',
      '/var/lib/registry/fill',
      // the replicas, by pod name, from the headless Service: not from spec.replicas, so scaling rolls nothing
      '--peers-srv',
      '_http._tcp.registry-mirror-quay-headless.kube-extra.svc.cluster.local',
      // Prometheus scrapes it on every interface; the NetworkPolicy admits the monitoring pods only
      '--metrics-listen',
      ':9101',
    ]);
    expect(fill.ports).toEqual([{ name: 'fill-metrics', containerPort: 9101 }]);
    expect(fill.env).toContainEqual({ name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } });
    expect(fill.volumeMounts).toEqual([{ name: 'cache', mountPath: '/var/lib/registry' }]);
    // the replicas reach each other's front
    const policy = find(objs, 'NetworkPolicy', 'registry-mirror-quay');
    expect(policy.spec.ingress).toContainEqual({
      from: [{ podSelector: { matchLabels: { mirror: 'quay', 'app.kubernetes.io/component': 'cache' } } }],
      ports: [{ protocol: 'TCP', port: 5000 }],
    });
    expect(find(synth({ upstreamUrl: 'quay.io' }), 'NetworkPolicy', 'registry-mirror-quay').spec.ingress).toHaveLength(
      2,
    );
    const monitoringPorts = policy.spec.ingress[1].ports.map((p: { port: number }) => p.port);
    expect(monitoringPorts).toContain(9101);
    expect(
      find(synth({ upstreamUrl: 'quay.io' }), 'NetworkPolicy', 'registry-mirror-quay').spec.ingress[1].ports.map(
        (p: { port: number }) => p.port,
      ),
    ).not.toContain(9101);
    expect(
      find(objs, 'Service', 'registry-mirror-quay-headless').spec.ports.map((p: { name: string }) => p.name),
    ).toContain('fill-metrics');
    const conf = find(objs, 'ConfigMap', 'registry-mirror-quay-config').data!['nginx.conf'];
    expect(conf).not.toContain('proxy_cache_lock');
    // the default keeps nginx's whole fill and no fill container
    const whole = find(synth({ upstreamUrl: 'quay.io' }), 'StatefulSet', 'registry-mirror-quay');
    expect(podSpec(whole).containers.map((c: { name: string }) => c.name)).not.toContain('fill');
  });

  it('spec.fill streaming with no fill image: a SpecError naming the file, the mirror and the field, no default image', () => {
    let err: unknown;
    try {
      synthesizeMirror({
        name: 'quay',
        spec: { upstreamUrl: 'quay.io', fill: 'streaming' },
        source: 'mirrors/quay.yaml',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SpecError);
    expect((err as SpecError).problems).toEqual([
      expect.objectContaining({ source: 'mirrors/quay.yaml', mirror: 'quay', field: 'spec.fill' }),
    ]);
    expect((err as Error).message).toMatch(
      /^mirrors\/quay\.yaml: mirror 'quay': spec\.fill is streaming, .* no image is set for it: .*--fill-image, FILL_IMAGE or fillImage in cdk8s\.yaml/,
    );
    // the construct alone refuses too, rather than pick an image
    expect(
      () => new RegistryMirror(Testing.chart(), 'Mirror', { name: 'quay', upstreamUrl: 'quay.io', fill: 'streaming' }),
    ).toThrow(/spec.fill is streaming, .* no fillImage is set/);
  });

  it('spec.fill whole (the default): a fill image adds the keeper of the size bound, and no fill', () => {
    for (const spec of [{ upstreamUrl: 'quay.io' }, { upstreamUrl: 'quay.io', fill: 'whole' as const }]) {
      const sts = find(
        synth(spec, { fillImage: 'registry.example.com/mirror-synth:0.1.0' }),
        'StatefulSet',
        'registry-mirror-quay',
      );
      expect(podSpec(sts).containers.map((c: { name: string }) => c.name)).toEqual([
        'front',
        'registry',
        'keeper',
        'front-metrics',
        'volume-exporter',
      ]);
    }
  });

  it("runs node_exporter beside them for the cache volume's size and free space, and nothing else", () => {
    const objs = synth({ upstreamUrl: 'quay.io' });
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    const exporter = container(sts, 'volume-exporter');
    expect(exporter.image).toBe(NODE_EXPORTER_IMAGE);
    expect(exporter.args).toEqual([
      '--web.listen-address=:9100',
      '--web.disable-exporter-metrics',
      '--collector.disable-defaults',
      '--collector.filesystem',
      '--collector.filesystem.mount-points-include=^/var/lib/registry$',
    ]);
    expect(exporter.ports).toEqual([{ name: 'volume-metrics', containerPort: 9100 }]);
    expect(exporter.volumeMounts).toEqual([{ name: 'cache', mountPath: '/var/lib/registry', readOnly: true }]);
    // the mirror serves whatever its metrics do: no probe that could make the pod unready
    expect(exporter.readinessProbe).toBeUndefined();
    expect(exporter.resources.limits.memory).toBeDefined();
    // node_exporter reads /proc/1/mountinfo: PID 1 must be itself, not the pod's pause process
    expect(podSpec(sts).shareProcessNamespace).toBeUndefined();
    expect(find(objs, 'Service', 'registry-mirror-quay-headless').spec.ports).toContainEqual({
      name: 'volume-metrics',
      port: 9100,
      targetPort: 'volume-metrics',
    });
  });

  it('pins the volume exporter image to the node_exporter version the tests build', () => {
    const goMod = readFileSync(new URL('../../tools/node-exporter/go.mod', import.meta.url), 'utf8');
    const pinned = /^require github\.com\/prometheus\/node_exporter (v\S+)$/m.exec(goMod)?.[1];
    expect(pinned).toBeDefined();
    expect(NODE_EXPORTER_IMAGE).toBe(`quay.io/prometheus/node-exporter:${pinned}`);
  });

  it('sends Docker Hub to registry-1.docker.io and configures the docker.io host on nodes', () => {
    const objs = synth({ upstreamUrl: 'docker.io' }, {}, 'hub');
    expect(find(objs, 'ConfigMap', 'registry-mirror-hub-config').data!['config.yml']).toContain(
      'remoteurl: https://registry-1.docker.io',
    );
    const agent = env(container(find(objs, 'DaemonSet', 'registry-mirror-hub'), 'node-agent'));
    expect(agent.HOSTS).toBe('docker.io');
    expect(agent.SERVER_URL).toBe('https://registry-1.docker.io');
  });

  it('points the masquerade host at the mirror too', () => {
    const agent = env(
      container(
        find(synth({ upstreamUrl: 'quay.io', masqueradeUrl: 'local.quay.io' }), 'DaemonSet', 'registry-mirror-quay'),
        'node-agent',
      ),
    );
    expect(agent.HOSTS).toBe('quay.io local.quay.io');
    expect(agent.SERVICE_NAME).toBe('registry-mirror-quay.kube-extra.svc.cluster.local');
  });

  it('uses stable selectors without cdk8s address labels', () => {
    const objs = synth({ upstreamUrl: 'quay.io', labels: { team: 'a' } });
    expect(find(objs, 'StatefulSet', 'registry-mirror-quay').spec.selector).toEqual({
      matchLabels: { mirror: 'quay', 'app.kubernetes.io/component': 'cache' },
    });
    expect(find(objs, 'DaemonSet', 'registry-mirror-quay').spec.selector).toEqual({
      matchLabels: { mirror: 'quay', 'app.kubernetes.io/component': 'node-agent' },
    });
    expect(JSON.stringify(objs)).not.toContain('cdk8s.io');
  });

  it('meets Pod Security "restricted" for the cache pods', () => {
    const sts = find(synth({ upstreamUrl: 'quay.io' }), 'StatefulSet', 'registry-mirror-quay');
    const pod = podSpec(sts);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    for (const c of pod.containers) {
      expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    }
    expect(pod.volumes.some((v: object) => 'hostPath' in v)).toBe(false);
  });

  it('gives the node agent only /etc/containerd/certs.d, unprivileged and without capabilities', () => {
    const ds = find(synth({ upstreamUrl: 'quay.io' }), 'DaemonSet', 'registry-mirror-quay');
    const hostPaths = podSpec(ds).volumes.filter((v: { hostPath?: unknown }) => v.hostPath);
    expect(hostPaths).toEqual([
      { name: 'certs-d', hostPath: { path: '/etc/containerd/certs.d', type: 'DirectoryOrCreate' } },
    ]);
    const c = container(ds, 'node-agent');
    expect(c.securityContext).toMatchObject({
      privileged: false,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(podSpec(ds).hostNetwork).toBeUndefined();
  });

  it('applies storage, replicas, resources, scheduling, pull secrets and labels', () => {
    const objs = synth({
      upstreamUrl: 'quay.io',
      replicas: 3,
      volumeClaimTemplate: { spec: { storageClassName: 'ssd', resources: { requests: { storage: '75Gi' } } } },
      resources: { limits: { cpu: 2, memory: '4Gi' } },
      tolerations: [{ key: 'infra', operator: 'Exists', effect: 'NoSchedule' }],
      nodeSelector: { pool: 'infra' },
      priorityClassName: 'high',
      imagePullSecrets: [{ name: 'pull' }],
      labels: { team: 'platform' },
    });
    const sts = find(objs, 'StatefulSet', 'registry-mirror-quay');
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.volumeClaimTemplates[0].spec).toMatchObject({
      storageClassName: 'ssd',
      resources: { requests: { storage: '75Gi' } },
    });
    expect(container(sts, 'registry').resources.limits).toEqual({ cpu: 2, memory: '4Gi' });
    expect(podSpec(sts)).toMatchObject({
      nodeSelector: { pool: 'infra' },
      priorityClassName: 'high',
      imagePullSecrets: [{ name: 'pull' }],
    });
    const ds = find(objs, 'DaemonSet', 'registry-mirror-quay');
    expect(podSpec(ds).tolerations).toEqual([{ key: 'infra', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(podSpec(ds).nodeSelector).toBeUndefined();
    for (const o of objs) expect(o.metadata.labels?.team).toBe('platform');
  });

  it('pulls its images from the override registry in air-gapped clusters', () => {
    const objs = synth({ upstreamUrl: 'quay.io', imageRegistry: 'harbor.local:8443/hub' });
    expect(container(find(objs, 'StatefulSet', 'registry-mirror-quay'), 'registry').image).toBe(
      'harbor.local:8443/hub/library/registry:3.1.2',
    );
    expect(container(find(objs, 'StatefulSet', 'registry-mirror-quay'), 'front').image).toBe(
      'harbor.local:8443/hub/nginxinc/nginx-unprivileged:1.30.4-alpine',
    );
    expect(container(find(objs, 'StatefulSet', 'registry-mirror-quay'), 'volume-exporter').image).toBe(
      'harbor.local:8443/hub/prometheus/node-exporter:v1.12.1',
    );
    // not the node agent's: root on every node, its image is the platform's (--node-agent-image)
    expect(container(find(objs, 'DaemonSet', 'registry-mirror-quay'), 'node-agent').image).toBe(NODE_AGENT_IMAGE);
  });

  it('rolls the registry pods when the config or the credentials change', () => {
    const annotations = (spec: MirrorSpec, hash?: string) =>
      find(synth(spec, { credentialsHash: hash }), 'StatefulSet', 'registry-mirror-quay').spec.template.metadata
        .annotations;
    const a = annotations({ upstreamUrl: 'quay.io' });
    expect(annotations({ upstreamUrl: 'quay.io' })).toEqual(a);
    expect(annotations({ upstreamUrl: 'ghcr.io' })).not.toEqual(a);
    expect(annotations({ upstreamUrl: 'quay.io' }, 'h1')[CREDENTIALS_HASH_ANNOTATION]).toBe('h1');
    expect(a[CREDENTIALS_HASH_ANNOTATION]).toBeUndefined();
  });

  it('is deterministic', () => {
    const spec: MirrorSpec = { upstreamUrl: 'quay.io', credentialsSecret: 'c', labels: { b: '1', a: '2' } };
    expect(JSON.stringify(synth(spec))).toBe(JSON.stringify(synth({ ...spec, labels: { a: '2', b: '1' } })));
  });

  it('composes into any chart', () => {
    const app = new App();
    const chart = new Chart(app, 'mine', { namespace: 'elsewhere' });
    const m = new RegistryMirror(chart, 'Quay', { name: 'quay', upstreamUrl: 'quay.io', namespace: 'mirrors' });
    expect(m.cache.name).toBe('registry-mirror-quay');
    expect(m.service.name).toBe('registry-mirror-quay');
    expect(m.headlessService.name).toBe('registry-mirror-quay-headless');
    expect(m.nodeAgent.name).toBe('registry-mirror-quay');
    expect(m.networkPolicy.name).toBe('registry-mirror-quay');
    expect(m.hosts).toEqual(['quay.io']);
    expect(chart.toJson()).toHaveLength(7);
  });
});
