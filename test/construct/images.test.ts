// The images the cache pod runs are the versions the e2e suite builds from tools/ and runs.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { IMAGE_DIGEST_PATTERN, IMAGES, imageTag } from '../../src/api/names.js';
import { parseMirrorFile } from '../../src/api/validate.js';
import { FRONT_METRICS_IMAGE, imageFor, REGISTRY_IMAGE } from '../../src/construct/images.js';
import { synthesizeMirror } from '../../src/synth/chart.js';
import { mirrorYaml } from '../support/fixtures/mirror-yaml.js';

const repo = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, repo), 'utf8');
const tag = (image: string) => image.slice(image.lastIndexOf(':') + 1);

describe('pinned images', () => {
  it('Distribution: the image tag is the version tools/registry/go.mod pins', () => {
    const pinned = /^require github\.com\/distribution\/distribution\/v3 v(\S+)$/m.exec(read('tools/registry/go.mod'));
    expect(pinned?.[1]).toBe(tag(REGISTRY_IMAGE));
  });

  it('mtail: the image tag is the release tools/build.sh stamps on the commit tools/mtail/go.mod pins', () => {
    const stamped = /-X main\.Version=v(\S+)/.exec(read('tools/build.sh'));
    expect(stamped?.[1]).toBe(tag(FRONT_METRICS_IMAGE));
    expect(read('tools/mtail/go.mod')).toContain(`is v${tag(FRONT_METRICS_IMAGE)} (the image the cache pod runs)`);
  });
});

// A reference as the OCI distribution spec and containerd parse it: host[:port]/path:tag, and
// with a digest pin, then @sha256:<64 lower-case hex>.
const REFERENCE =
  /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = 'sha256:' + '0123456789abcdef'.repeat(4);

describe('image references and digest pins', () => {
  it.each(Object.entries(IMAGES))('%s: %s is a fully qualified reference pinned by tag', (_role, ref) => {
    expect(ref).toMatch(REFERENCE);
    expect(ref).not.toContain('@');
    expect(imageTag(ref)).not.toBe('latest');
  });

  it('a digest is sha256: and 64 lower-case hex digits', () => {
    const pattern = new RegExp(IMAGE_DIGEST_PATTERN);
    expect(DIGEST).toMatch(pattern);
    for (const bad of [DIGEST.toUpperCase(), DIGEST.slice(0, -1), `sha512:${DIGEST.slice(7)}`, `${DIGEST}0`])
      expect(bad).not.toMatch(pattern);
  });

  it("spec.imageDigests pins a cache image as <reference>@sha256:..., also from spec.imageRegistry; tags only by default; neither touches the node agent's image", () => {
    const spec = `{upstreamUrl: quay.io, imageRegistry: harbor.example.com/hub, imageDigests: {registry: '3.1.2@${DIGEST}'}}`;
    const [mirror] = parseMirrorFile(mirrorYaml('quay', spec), 'mirrors/quay.yaml');
    const images = synthesizeMirror(mirror, { namespace: 'kube-extra' })
      .filter((o) => o.kind === 'StatefulSet' || o.kind === 'DaemonSet')
      .flatMap((o) => (o as any).spec.template.spec.containers.map((c: { image: string }) => c.image) as string[]);
    expect(images.sort()).toEqual(
      [
        `harbor.example.com/hub/library/registry:3.1.2@${DIGEST}`,
        // the node agent runs as root on every node: its image is the platform's (--node-agent-image)
        'docker.io/library/busybox:1.37.0',
        'harbor.example.com/hub/nginxinc/nginx-unprivileged:1.30.4-alpine',
        'harbor.example.com/hub/google/mtail:3.0.9',
        'harbor.example.com/hub/prometheus/node-exporter:v1.12.1',
      ].sort(),
    );
    for (const image of images) expect(image.replace(`@${DIGEST}`, '')).toMatch(REFERENCE);
    expect(imageFor('front', {})).toBe(IMAGES.front);
  });

  it("the node agent runs the platform's image (--node-agent-image), whatever the spec says", () => {
    const [mirror] = parseMirrorFile(
      mirrorYaml('quay', '{upstreamUrl: quay.io, imageRegistry: harbor.example.com/team-a}'),
      'mirrors/quay.yaml',
    );
    const platform = `registry.internal/platform/busybox:1.37.0@${DIGEST}`;
    const agent = synthesizeMirror(mirror, { namespace: 'kube-extra', nodeAgentImage: platform }).find(
      (o) => o.kind === 'DaemonSet',
    ) as any;
    expect(agent.spec.template.spec.containers.map((c: { image: string }) => c.image)).toEqual([platform]);
  });

  it('refuses a digest pin that is malformed or names another tag than the one deployed', () => {
    const parse = (value: string) => () =>
      parseMirrorFile(
        mirrorYaml('quay', `{upstreamUrl: quay.io, imageDigests: {registry: '${value}'}}`),
        'mirrors/quay.yaml',
      );
    expect(parse(DIGEST)).toThrow(
      "spec.imageDigests.registry must be <tag>@sha256:<64 lower-case hex digits>, such as 3.1.2@sha256:..., got '" +
        DIGEST +
        "'",
    );
    expect(parse(`3.1.1@${DIGEST}`)).toThrow(
      `spec.imageDigests.registry must pin 3.1.2, the tag mirror-synth deploys (its digest: crane digest docker.io/library/registry:3.1.2), got '3.1.1@${DIGEST}'`,
    );
    expect(parse(`3.1.2@${DIGEST}`)).not.toThrow();
  });
});
