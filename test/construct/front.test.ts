import { describe, expect, it } from 'vitest';

import {
  FRONT_LOCK_TIMEOUT_SECONDS,
  frontReadinessScript,
  frontSizing,
  quantityBytes,
  renderFrontConfig,
} from '../../src/construct/front.js';
import { FRONT_FILL_PORT, REGISTRY_DEBUG_PORT, REGISTRY_METRICS_PORT } from '../../src/construct/ports.js';

describe('the front (nginx) config', () => {
  const conf = renderFrontConfig({ mirrorName: 'quay', sizing: frontSizing(quantityBytes('20Gi')), fill: 'whole' });

  it('caches digest-addressed blobs and manifests only, one fetch per digest', () => {
    const digestLocation =
      /location ~ "\^\/v2\/\.\+\/\(blobs\|manifests\)\/sha256:\[0-9a-f\]\{64\}\$" \{([^}]*)\}/.exec(conf);
    expect(digestLocation, conf).not.toBeNull();
    const body = digestLocation![1];
    expect(body).toContain('proxy_cache digests;');
    expect(body).toContain('proxy_cache_lock on;');
    expect(body).toContain(`proxy_cache_lock_timeout ${FRONT_LOCK_TIMEOUT_SECONDS}s;`);
    expect(body).toContain(`proxy_cache_lock_age ${FRONT_LOCK_TIMEOUT_SECONDS}s;`);
    // tags and everything else go to Distribution, uncached
    expect(conf.match(/proxy_cache digests;/g)).toHaveLength(1);
    expect(conf).toMatch(/location \/ \{\s*proxy_pass http:\/\/distribution;\s*proxy_buffering off;/);
  });

  it('caches only what Distribution verified: misses go through the fill server, a HEAD first', () => {
    const body = /location ~ "\^\/v2\/[^"]*" \{([^}]*)\}/.exec(conf)![1];
    expect(body).toContain('proxy_pass http://fill;');
    expect(body).toContain('proxy_no_cache $front_unverified;');
    expect(body).toContain(`proxy_read_timeout ${FRONT_LOCK_TIMEOUT_SECONDS}s;`);
    // cached: the URL's digest as Distribution's quoted ETag (a blob from its store, a manifest)
    expect(conf).toContain(`map "$upstream_http_etag $uri" $front_unverified {
    '~^"(sha256:[0-9a-f]{64})" /v2/.+/(blobs|manifests)/\\1$' 0;
    default 1;
  }`);
    expect(conf).toContain(`server 127.0.0.1:${FRONT_FILL_PORT};`);
    const fill = conf.slice(conf.indexOf(`listen 127.0.0.1:${FRONT_FILL_PORT};`));
    expect(fill).toContain('limit_conn fills 1;');
    expect(fill).toContain('proxy_ignore_client_abort on;');
    expect(fill).toMatch(/location \/ \{\s*auth_request \/mirror-synth\/fill;\s*proxy_pass http:\/\/distribution;/);
    expect(fill).toMatch(/location = \/mirror-synth\/fill \{\s*internal;\s*proxy_method HEAD;/);
  });

  it('spec.fill streaming: every miss goes to mirror-synth fill, with no cache lock and no fill server of its own', () => {
    const streaming = renderFrontConfig({
      mirrorName: 'quay',
      sizing: frontSizing(quantityBytes('20Gi')),
      fill: 'streaming',
    });
    const body = /location ~ "\^\/v2\/[^"]*" \{([^}]*)\}/.exec(streaming)![1];
    expect(body).toContain('proxy_pass http://fill;');
    expect(body).not.toContain('proxy_cache_lock');
    // still caches only what Distribution verified, and the fill's idle cut (300 s) comes first
    expect(body).toContain('proxy_no_cache $front_unverified;');
    expect(body).toContain('proxy_read_timeout 330s;');
    // readiness goes through the fill, so a pod is not Ready before its fill listens
    expect(streaming).toMatch(/location = \/mirror-synth\/ready \{[^}]*proxy_pass http:\/\/fill\/;/);
    expect(conf).toMatch(/location = \/mirror-synth\/ready \{[^}]*proxy_pass http:\/\/distribution\/;/);
    expect(streaming).toContain(`server 127.0.0.1:${FRONT_FILL_PORT};`);
    expect(streaming).not.toContain(`listen 127.0.0.1:${FRONT_FILL_PORT};`);
    expect(streaming).not.toContain('limit_conn');
    // the rest is the same config
    const strip = (c: string) =>
      c
        .replace(/location ~ "\^\/v2\/[^"]*" \{[^}]*\}/, '')
        .replace(/  # The fill:[\s\S]*\n  \}\n/, '')
        .replace('  limit_conn_zone $uri zone=fills:1m;\n', '')
        .replace(/location = \/mirror-synth\/ready \{[^}]*\}/, '')
        .replace(
          /    # Where the request came from[^\n]*\n    proxy_set_header X-Mirror-Synth-Client \$remote_addr;\n/,
          '',
        );
    expect(strip(streaming)).toBe(strip(conf));
    // the address the fill honours X-Mirror-Synth-Peer from is the front's to say, not a client's
    expect(streaming.slice(streaming.indexOf('listen 5000;'), streaming.indexOf('location ~'))).toContain(
      'proxy_set_header X-Mirror-Synth-Client $remote_addr;',
    );
  });

  it('lets only GET and HEAD past it, without a request body, whichever the fill', () => {
    for (const fill of ['whole', 'streaming'] as const) {
      const c = renderFrontConfig({ mirrorName: 'quay', sizing: frontSizing(quantityBytes('20Gi')), fill });
      const server = c.slice(c.indexOf('listen 5000;'), c.indexOf('location ~'));
      expect(server).toMatch(/if \(\$request_method !~ \^\(GET\|HEAD\)\$\) \{\s*return 405;\s*\}/);
      expect(server).toContain('proxy_pass_request_body off;');
      expect(server).toContain('proxy_set_header Content-Length "";');
      // no location sets headers of its own, which would drop the server's (nginx inherits them only whole)
      const nodeFacing = c.slice(c.indexOf('listen 5000;'), c.indexOf('location @fallback'));
      expect(
        nodeFacing.slice(nodeFacing.indexOf('location ~')).match(/proxy_set_header|proxy_pass_request_body/g),
      ).toBeNull();
    }
  });

  it('answers 404 for what nodes never ask: the catalog, and digests other than sha256 (which would skip the verified location)', () => {
    for (const fill of ['whole', 'streaming'] as const) {
      const c = renderFrontConfig({ mirrorName: 'quay', sizing: frontSizing(quantityBytes('20Gi')), fill });
      const locations = [...c.matchAll(/location ~ "([^"]+)"/g)].map((m) => m[1]);
      // regex locations are tried in order: sha256 first, the refusal next
      expect(locations).toEqual([
        '^/v2/.+/(blobs|manifests)/sha256:[0-9a-f]{64}$',
        '^/v2/(_catalog$|.+/(blobs|manifests)/[^/]*:)',
      ]);
      const refusal = new RegExp(locations[1]);
      for (const uri of [
        '/v2/_catalog',
        `/v2/lib/app/blobs/sha512:${'a'.repeat(128)}`,
        `/v2/lib/app/manifests/sha384:${'a'.repeat(96)}`,
        `/v2/lib/app/blobs/sha256:${'A'.repeat(64)}`,
      ])
        expect(refusal.test(uri), uri).toBe(true);
      for (const uri of [
        '/v2/',
        '/v2/lib/app/manifests/1.0',
        '/v2/lib/app/tags/list',
        '/v2/_catalog/x/manifests/latest',
      ])
        expect(refusal.test(uri), uri).toBe(false);
      expect(c).toMatch(/location ~ "\^\/v2\/\(_catalog[^{]*\{\s*default_type application\/json;\s*return 404 /);
    }
  });

  it("passes on Distribution's /metrics on the metrics port, and nothing else of its debug server, with either fill", () => {
    for (const fill of ['whole', 'streaming'] as const) {
      const c = renderFrontConfig({ mirrorName: 'quay', sizing: frontSizing(quantityBytes('20Gi')), fill });
      const server = c.slice(c.indexOf(`listen ${REGISTRY_METRICS_PORT};`));
      expect(server, fill).toMatch(
        new RegExp(
          `location = /metrics \\{\\s*limit_except GET \\{\\s*deny all;\\s*\\}\\s*proxy_pass http://127\\.0\\.0\\.1:${REGISTRY_DEBUG_PORT}/metrics;`,
        ),
      );
      expect(server, fill).toMatch(/location \/ \{\s*return 404;\s*\}/);
      // the only place the debug server is named
      expect(c.split(`127.0.0.1:${REGISTRY_DEBUG_PORT}`), fill).toHaveLength(2);
    }
  });

  it('turns failures behind it into 404 so nodes try the upstream', () => {
    expect(conf).toContain('error_page 401 403 429 500 502 503 504 = @fallback;');
    expect(conf).toMatch(/location @fallback \{[^}]*return 404/);
  });

  it('bounds its cache by the volume size', () => {
    expect(conf).toContain('max_size=5120m min_free=2048m');
    expect(frontSizing(quantityBytes('20Gi'))).toEqual({
      maxSizeMiB: 5120,
      minFreeMiB: 2048,
      readyMinFreeKiB: 1048576,
    });
    expect(frontReadinessScript(1048576)).toContain('-ge 1048576');
  });

  it('reads Kubernetes storage quantities', () => {
    expect(quantityBytes('20Gi')).toBe(20 * 2 ** 30);
    expect(quantityBytes('500M')).toBe(500e6);
    expect(quantityBytes('1e9')).toBe(1e9);
    expect(quantityBytes('1.5Ti')).toBe(1.5 * 2 ** 40);
    expect(quantityBytes(1024)).toBe(1024);
    expect(() => quantityBytes('lots')).toThrow(/not a storage quantity: 'lots'/);
  });
});
