// The images the cache pod runs are the versions the e2e suite builds from tools/ and runs.
import { readFileSync } from 'node:fs';

import { describe, expect, it } from 'vitest';

import { FRONT_METRICS_IMAGE, REGISTRY_IMAGE } from '../../src/construct/images.js';

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
