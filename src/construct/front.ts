/**
 * The front: nginx in the cache pod, in front of Distribution. Pure: settings in, nginx.conf
 * text out. It holds no secret (the front never sees the upstream's credentials).
 *
 * What it does, and why:
 * - Digest-addressed requests (`/v2/<name>/blobs/sha256:...`, `/v2/<name>/manifests/sha256:...`)
 *   are cached by nginx with `proxy_cache_lock`: however many nodes ask for a digest at once,
 *   one request reaches Distribution (which fetches from the upstream once) and the others wait
 *   for the cached copy. Digest content is immutable, so caching it is safe once it is checked.
 * - Only bytes Distribution has checked against the digest in the URL enter the cache. A miss
 *   goes through the fill server (same nginx, loopback): a HEAD first, which Distribution answers
 *   only when it has fetched the whole blob from the upstream and stored it, which it does only
 *   when its sha256 matches; then a GET that Distribution serves from its store. The front caches
 *   an answer only when its ETag is the one Distribution gives content it verified: `"<digest>"`,
 *   quoted, the URL's digest (a blob streamed from the upstream has it unquoted; a manifest by
 *   digest is checked before Distribution sends it). So a corrupt or truncated 200 from the
 *   upstream is passed on once, uncached, and the next request fetches again. Why not cache the
 *   first streamed answer unless Distribution refused it: nginx decides what to cache from the
 *   headers, before the body, and frees the lock at once for an answer it will not cache, so every
 *   waiter would fetch from the upstream again.
 * - Everything else (tags, `/v2/`) goes to Distribution unbuffered: it resolves tags and does
 *   the upstream's token auth.
 * - Only GET and HEAD pass, without a request body: nodes only read, and a body passed on to a
 *   server that does not expect one is read there as a request of its own (issue 25). Nor do
 *   digests other than sha256 (they would skip the verified location) or the catalog: 404.
 * - A refusal or failure behind the front (Distribution down, 5xx, the upstream's 401/403/429
 *   passed through) becomes a 404: every node client (containerd 1.6 and 2.x, CRI-O) then
 *   tries the next host, the upstream itself.
 * - Distribution's Prometheus metrics: the front listens on the `metrics` port and passes GET
 *   /metrics on to Distribution's debug server on the pod's loopback, and nothing else there
 *   (404): pprof and expvar stay inside the pod.
 * - Each request is also logged, in a short fixed format, as a syslog datagram to mtail on the
 *   pod's loopback (assets/front.mtail): the front's own hits, misses and bytes as metrics.
 *   UDP keeps nginx independent of mtail: nothing to open at start, nothing to block on.
 */

import { type FillMode } from '../api/names.js';
import { MAX_BYTES, parseBytes } from '../api/quantity.js';
import {
  FILL_CLIENT_HEADER,
  FILL_IDLE_TIMEOUT_SECONDS,
  FILL_PEER_HEADER,
  FRONT_FILL_READ_TIMEOUT_SECONDS,
} from '../fill/protocol.js';
import { REGISTRY_STORAGE_PATH } from './distribution-config.js';
import {
  DISTRIBUTION_PORT,
  FRONT_FILL_PORT,
  FRONT_LOG_PORT,
  KEEPER_LOG_PORT,
  REGISTRY_DEBUG_PORT,
  REGISTRY_METRICS_PORT,
  REGISTRY_PORT,
} from './ports.js';

/** Where the front's config is mounted, and its cache on the shared volume. */
export const FRONT_CONFIG_FILE = 'nginx.conf';
export const FRONT_CONFIG_DIR = '/etc/mirror-synth/front';
export const FRONT_CACHE_PATH = `${REGISTRY_STORAGE_PATH}/front`;
/** `spec.fill: streaming`: where mirror-synth's fill spools the transfers in progress. */
export const FILL_SPOOL_PATH = `${REGISTRY_STORAGE_PATH}/fill`;
/** The front's readiness endpoint: nginx answers and Distribution behind it (with `spec.fill: streaming`, the fill too) is healthy. */
export const FRONT_READY_PATH = '/mirror-synth/ready';
/** Scratch space (an emptyDir): the pid file and nginx's temp paths. */
export const FRONT_TMP_PATH = '/tmp';
/**
 * Waiters for a digest another request is fetching wait this long for the cached copy, then
 * fetch it themselves. Below containerd's CRI image_pull_progress_timeout (5 min in 2.x), so a
 * node's pull never sits without bytes long enough to be cancelled. See README "Known limits".
 */
export const FRONT_LOCK_TIMEOUT_SECONDS = 240;

/** Shares of the cache volume: the front's cap, the free space it keeps, the free space readiness needs. */
const FRONT_MAX_SHARE = 0.25;
const FRONT_MIN_FREE_SHARE = 0.1;
const READY_MIN_FREE_SHARE = 0.05;

/** Bytes of a size the schema accepts (quantity.ts); throws on anything else, as a construct given an unvalidated spec. */
export function quantityBytes(q: string | number): number {
  const bytes = parseBytes(q);
  if (bytes === undefined || !(bytes > 0 && bytes < MAX_BYTES)) throw new Error(`not a storage quantity: '${q}'`);
  return bytes;
}

/** How the front uses a cache volume of `volumeBytes`. */
export interface FrontSizing {
  readonly maxSizeMiB: number;
  readonly minFreeMiB: number;
  /** Readiness fails when the volume has less free space than this (KiB, as df prints). */
  readonly readyMinFreeKiB: number;
}

/**
 * `frontOnly`: the volume is the front's alone (Distribution stores in a bucket), so the front
 * may fill it up to the free space it keeps.
 */
export function frontSizing(volumeBytes: number, opts: { frontOnly?: boolean; boundBytes?: number } = {}): FrontSizing {
  const mib = volumeBytes / 2 ** 20;
  const maxShare = opts.frontOnly ? 1 - FRONT_MIN_FREE_SHARE - READY_MIN_FREE_SHARE : FRONT_MAX_SHARE;
  // With a size bound (the keeper, spec.cache.maxSize) the front's share is of the bound, which
  // counts the front's copy: Distribution's store gets the rest.
  const ofMiB = opts.boundBytes === undefined ? mib : Math.min(mib, opts.boundBytes / 2 ** 20);
  return {
    maxSizeMiB: Math.max(1, Math.floor(ofMiB * maxShare)),
    minFreeMiB: Math.max(1, Math.floor(mib * FRONT_MIN_FREE_SHARE)),
    readyMinFreeKiB: Math.max(1, Math.floor(mib * 1024 * READY_MIN_FREE_SHARE)),
  };
}

/**
 * The front container's readiness check (an exec probe, POSIX sh with df and wget from the
 * image): the volume has room for new content, nginx answers and Distribution behind it is
 * healthy. A full volume takes the pod out of the Service, so nodes pull from the upstream
 * instead of receiving truncated blobs.
 */
export function frontReadinessScript(readyMinFreeKiB: number): string {
  return [
    `free=$(df -Pk ${REGISTRY_STORAGE_PATH} | awk 'NR == 2 { print $4 }')`,
    `[ "$free" -ge ${readyMinFreeKiB} ] || { echo "cache volume: $free KiB free, readiness needs ${readyMinFreeKiB}"; exit 1; }`,
    `exec wget -q -T 2 -O /dev/null http://127.0.0.1:${REGISTRY_PORT}${FRONT_READY_PATH}`,
    '',
  ].join('\n');
}

export interface FrontConfigProps {
  readonly mirrorName: string;
  readonly sizing: FrontSizing;
  /** `spec.fill`: nginx's own fill server, or mirror-synth's streaming fill on FRONT_FILL_PORT. */
  readonly fill: FillMode;
  /** Tell the keeper (the size bound, construct/keeper.ts) what was served, for its recency. @default false */
  readonly keeperLog?: boolean;
}

/** What was served, for the keeper's recency (construct/keeper.ts): UDP as for mtail, so nginx never waits on it. */
const KEEPER_LOG = `  log_format keeper escape=none '$status $uri';
  access_log syslog:server=127.0.0.1:${KEEPER_LOG_PORT},tag=keeper,nohostname keeper;
`;

/** nginx's own fill server (`spec.fill: whole`). */
const WHOLE_FILL_SERVER = `  # The fill: the front's cache misses only. One at a time per digest (another gets a 503, and its
  # node the upstream); it goes on when the front gives up waiting, so Distribution's copy completes.
  server {
    listen 127.0.0.1:${FRONT_FILL_PORT};
    access_log off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_connect_timeout 2s;
    proxy_read_timeout 3600s;
    proxy_ignore_client_abort on;
    limit_conn fills 1;

    location / {
      auth_request /mirror-synth/fill;
      proxy_pass http://distribution;
    }

    # Distribution answers a HEAD when the fetch is over (a HEAD's headers wait for its handler).
    location = /mirror-synth/fill {
      internal;
      proxy_method HEAD;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_pass http://distribution$request_uri;
    }
  }
`;

/** The parts of nginx.conf that differ between the two fills (`spec.fill`). */
interface FillSettings {
  /** http block: the fill server's per-digest connection limit. */
  readonly zone: string;
  /** Digest location: how long to wait for the fill, and buffers. */
  readonly wait: string;
  /** Digest location: the cache lock. */
  readonly lock: string;
  /** Digest location: `proxy_ignore_headers` beyond the common ones. */
  readonly ignoreHeaders: string;
  /** Readiness location: where it is passed. */
  readonly ready: string;
  /** Server (port 5000): headers for the fill, after the ones every fill gets. */
  readonly serverHeaders: string;
  /** http block: nginx's own fill server. */
  readonly server: string;
}

/**
 * whole: one request per digest reaches the fill server, which answers once the whole blob is in
 * Distribution's store; the others wait on the cache lock and get the cached copy; a fill longer
 * than the lock's timeout falls back. streaming: every miss goes to mirror-synth's fill, which
 * makes one transfer of the digest and streams it to all of them as it arrives, so no one waits
 * without bytes and no lock is needed. The fill gives the verified ETag to the request that
 * started the transfer only, and ends its body only once the digest matched: the front keeps that
 * one copy, and only when it is whole. The other requests get `X-Accel-Buffering: no` from the
 * fill (honoured here, never passed on): uncached anyway, they are relayed as they come rather
 * than copied through nginx's temp files. Readiness goes through the fill, which passes it to
 * Distribution, so a pod is not Ready before its fill listens.
 */
const FILL_SETTINGS: Record<FillMode, FillSettings> = {
  whole: {
    zone: '  limit_conn_zone $uri zone=fills:1m;\n',
    wait: `      # The fill answers when the whole blob is in Distribution's store; a longer fill falls back.
      proxy_read_timeout ${FRONT_LOCK_TIMEOUT_SECONDS}s;`,
    lock: `      proxy_cache_lock on;
      proxy_cache_lock_timeout ${FRONT_LOCK_TIMEOUT_SECONDS}s;
      proxy_cache_lock_age ${FRONT_LOCK_TIMEOUT_SECONDS}s;
`,
    ignoreHeaders: 'X-Accel-Buffering ',
    ready: '      proxy_pass http://distribution/;',
    serverHeaders: '',
    server: WHOLE_FILL_SERVER,
  },
  streaming: {
    zone: '',
    wait: `      # mirror-synth's fill sends bytes as they arrive, and itself cuts a transfer idle for ${FILL_IDLE_TIMEOUT_SECONDS} s.
      proxy_read_timeout ${FRONT_FILL_READ_TIMEOUT_SECONDS}s;
      # Relayed unbuffered (X-Accel-Buffering: no from the fill) a body goes through one buffer of
      # proxy_buffer_size: 4 KiB by default, a read and a write per page for every waiting node.
      proxy_buffer_size 256k;
      proxy_buffers 8 256k;`,
    lock: '',
    ignoreHeaders: '',
    ready: `      # through mirror-synth fill, which passes it to Distribution: ready when both are
      proxy_pass http://fill/;`,
    // Replacing any a client sent: the fill takes ${FILL_PEER_HEADER} from a replica's address only.
    serverHeaders: `    # Where the request came from: mirror-synth fill honours ${FILL_PEER_HEADER} only from a replica.
    proxy_set_header ${FILL_CLIENT_HEADER} $remote_addr;
`,
    server: '',
  },
};

export function renderFrontConfig(p: FrontConfigProps): string {
  const tmp = FRONT_TMP_PATH;
  const fill = FILL_SETTINGS[p.fill];
  return `# Generated by mirror-synth for mirror ${p.mirrorName}. Holds no secret.
worker_processes 2;
pid ${tmp}/nginx.pid;
error_log stderr notice;

events {
  worker_connections 4096;
}

http {
  log_format registry escape=json '{"time":"$time_iso8601","remote":"$remote_addr","method":"$request_method","uri":"$uri","status":$status,"bytes":$body_bytes_sent,"cache":"$upstream_cache_status","upstream_status":"$upstream_status","seconds":$request_time,"user_agent":"$http_user_agent"}';
  access_log /dev/stdout registry;
  # For metrics (mtail, assets/front.mtail): what was asked for, and whether the front's cache had it.
  map $uri $front_kind {
    "~^/v2/.+/blobs/sha256:" blob;
    "~^/v2/.+/manifests/" manifest;
    default other;
  }
  map $upstream_cache_status $front_cache {
    "" NONE;
    default $upstream_cache_status;
  }
  # 0 when Distribution answered with content it verified against the digest in the URL (above).
  map "$upstream_http_etag $uri" $front_unverified {
    '~^"(sha256:[0-9a-f]{64})" /v2/.+/(blobs|manifests)/\\1$' 0;
    default 1;
  }
  log_format metrics escape=none '$front_kind $front_cache $status $body_bytes_sent\\n';
  access_log syslog:server=127.0.0.1:${FRONT_LOG_PORT},tag=front,nohostname metrics;
${p.keeperLog ? KEEPER_LOG : ''}  # A read-only root filesystem: every path nginx writes is on the scratch volume.
  client_body_temp_path ${tmp}/client_temp;
  proxy_temp_path ${tmp}/proxy_temp;
  fastcgi_temp_path ${tmp}/fastcgi_temp;
  uwsgi_temp_path ${tmp}/uwsgi_temp;
  scgi_temp_path ${tmp}/scgi_temp;
  server_tokens off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65s;

  # Bounded: at most max_size, and less when the shared volume runs low (min_free).
  proxy_cache_path ${FRONT_CACHE_PATH} levels=1:2 keys_zone=digests:16m max_size=${p.sizing.maxSizeMiB}m min_free=${p.sizing.minFreeMiB}m inactive=168h use_temp_path=off;

  upstream distribution {
    server 127.0.0.1:${DISTRIBUTION_PORT};
    keepalive 64;
  }

  upstream fill {
    server 127.0.0.1:${FRONT_FILL_PORT};
    keepalive 64;
  }
${fill.zone}
  server {
    listen ${REGISTRY_PORT};
    server_name _;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    # Distribution is in the same pod: when it does not answer at once, it is down.
    proxy_connect_timeout 2s;
    proxy_read_timeout 300s;
    proxy_intercept_errors on;
    error_page 401 403 429 500 502 503 504 = @fallback;
    # Nodes only read, and send no body: nothing else, and no request body, goes past the front.
    # A body passed on to a server that does not expect one is how a request is smuggled in.
    if ($request_method !~ ^(GET|HEAD)$) {
      return 405;
    }
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
${fill.serverHeaders}
    location ~ "^/v2/.+/(blobs|manifests)/sha256:[0-9a-f]{64}$" {
      proxy_pass http://fill;
${fill.wait}
      proxy_cache digests;
      proxy_cache_key $uri;
      proxy_cache_valid 200 168h;
      proxy_no_cache $front_unverified;
${fill.lock}      proxy_cache_use_stale error timeout http_500 http_502 http_503 http_504;
      proxy_ignore_headers Cache-Control Expires Set-Cookie Vary X-Accel-Expires ${fill.ignoreHeaders}X-Accel-Limit-Rate;
      add_header X-Mirror-Cache $upstream_cache_status always;
    }

    # Nodes pull by sha256 digest or by tag, and never list repositories: another digest (sha512:,
    # sha384:, a sha256: that is not 64 hex digits) would skip the verified location above, and the
    # catalog lists every repository behind the mirror. A 404, so a node that asks tries the upstream.
    location ~ "^/v2/(_catalog$|.+/(blobs|manifests)/[^/]*:)" {
      default_type application/json;
      return 404 '{"errors":[{"code":"NAME_UNKNOWN","message":"the mirror does not serve this: pull it from the upstream"}]}\n';
    }

    location / {
      proxy_pass http://distribution;
      proxy_buffering off;
    }

    location = ${FRONT_READY_PATH} {
      access_log off;
${fill.ready}
    }

    location @fallback {
      default_type application/json;
      add_header X-Mirror-Fallback "distribution answered $upstream_status" always;
      return 404 '{"errors":[{"code":"NAME_UNKNOWN","message":"the mirror cannot serve this now: pull it from the upstream","detail":"distribution answered $upstream_status"}]}\\n';
    }
  }

  # Distribution's metrics, and nothing else of its debug server (pprof, expvar): it listens on loopback.
  server {
    listen ${REGISTRY_METRICS_PORT};
    server_name _;
    access_log off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_connect_timeout 2s;
    proxy_read_timeout 30s;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";

    location = /metrics {
      limit_except GET {
        deny all;
      }
      proxy_pass http://127.0.0.1:${REGISTRY_DEBUG_PORT}/metrics;
    }

    location / {
      return 404;
    }
  }

${fill.server}}
`;
}
