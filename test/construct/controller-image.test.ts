// The controller image has two recipes: scripts/build-image.sh (umoci, built and run by
// test/e2e/image.test.ts) and the Dockerfile (for users with Docker; no engine here to build
// it). This keeps them describing the same image, and both matching the Deployment that runs it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTROLLER_NAME } from '../../src/construct/platform.js';
import { CONTROLLER_METRICS_PORT } from '../../src/construct/ports.js';
import { controllerObjects } from '../../src/synth/chart.js';

const root = join(import.meta.dirname, '../..');

/** The `NAME=value` constants at the top of the build script. */
function scriptConstants(): Record<string, string> {
  const text = readFileSync(join(root, 'scripts/build-image.sh'), 'utf8');
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/^(IMAGE_[A-Z_]+)=(?:'([^']*)'|(\S*))$/gm)) out[m[1]] = m[2] ?? m[3];
  return out;
}

/** The instructions of the Dockerfile's last stage (the image users run), continuation lines joined. */
function finalStage(): { instruction: string; args: string }[] {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const from = lines.map((l) => /^FROM\s/i.test(l)).lastIndexOf(true);
  return lines.slice(from).map((l) => {
    const [, instruction, args] = /^(\S+)\s+(.*)$/.exec(l)!;
    return { instruction: instruction.toUpperCase(), args };
  });
}

/** The script's pinned Node.js release (NODE_VERSION) and its tarballs' integrity, x64 and arm64. */
function scriptNode(): { version: string; integrity: string; integrityArm64: string } {
  const text = readFileSync(join(root, 'scripts/build-image.sh'), 'utf8');
  return {
    version: /^NODE_VERSION=(\S+)$/m.exec(text)?.[1] ?? '',
    integrity: /^NODE_INTEGRITY=(\S+)$/m.exec(text)?.[1] ?? '',
    integrityArm64: /^NODE_INTEGRITY_ARM64=(\S+)$/m.exec(text)?.[1] ?? '',
  };
}

/** Every FROM of the Dockerfile, and the default of each ARG before the first one. */
function dockerfileBases(): { froms: string[]; args: Record<string, string> } {
  const lines = readFileSync(join(root, 'Dockerfile'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const froms = lines.filter((l) => /^FROM\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
  const first = lines.findIndex((l) => /^FROM\s/i.test(l));
  const args: Record<string, string> = {};
  for (const l of lines.slice(0, first)) {
    const m = /^ARG\s+([A-Z_]+)=(\S+)$/i.exec(l);
    if (m) args[m[1]] = m[2];
  }
  return { froms, args };
}

function dockerfile(instruction: string): string {
  const found = finalStage().filter((i) => i.instruction === instruction);
  expect(found, `the Dockerfile's last stage has one ${instruction}`).toHaveLength(1);
  return found[0].args;
}

const script = scriptConstants();
const deployment = controllerObjects({ namespace: 'kube-extra', image: 'example.com/mirror-synth:1.2.3' }).find(
  (o) => o.kind === 'Deployment' && o.metadata.name === CONTROLLER_NAME,
) as KubeObject & { spec: any };
const pod = deployment.spec.template.spec;
const container = pod.containers[0];

describe('the controller image', () => {
  it('the script declares its contract', () => {
    expect(Object.keys(script).sort()).toEqual(
      ['IMAGE_CMD', 'IMAGE_ENTRYPOINT', 'IMAGE_NODE', 'IMAGE_PATH', 'IMAGE_PORT', 'IMAGE_USER', 'IMAGE_WORKDIR'].sort(),
    );
  });

  it('the script pins an LTS Node.js release from the npm registry by version and integrity, not the host node', () => {
    const node = scriptNode();
    // Node 24 (Active LTS until 2026-10, maintained until 2028-04-30); Node 20 ended on 2026-04-30.
    expect(node.version).toMatch(/^24\.[0-9]+\.[0-9]+$/);
    expect(node.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    expect(node.integrityArm64).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    expect(node.integrityArm64).not.toBe(node.integrity);
    const text = readFileSync(join(root, 'scripts/build-image.sh'), 'utf8');
    expect(text).toContain('npm pack "node-linux-$arch@$NODE_VERSION"');
    expect(text).toContain('fetch_node x64 "$NODE_INTEGRITY"');
    expect(text).toContain('fetch_node arm64 "$NODE_INTEGRITY_ARM64"');
    expect(text).not.toContain('command -v node)');
  });

  it("the Dockerfile's base images are that Node release, by exact tag or by digest, never a floating tag", () => {
    const { froms, args } = dockerfileBases();
    expect(froms).toEqual(['${NODE_IMAGE}', '${NODE_IMAGE}']);
    // The default: the script's release by exact tag. Not by digest: none could be looked up
    // where this is written (the Dockerfile's comment says how to pin one with --build-arg).
    const image = args.NODE_IMAGE;
    expect(image).toMatch(/^node:[0-9.]+-alpine(@sha256:[0-9a-f]{64})?$/);
    expect(image.replace(/@.*$/, '')).toBe(`node:${scriptNode().version}-alpine`);
  });

  it('the Dockerfile runs as the same numeric non-root user, from the same directory', () => {
    expect(dockerfile('USER')).toBe(script.IMAGE_USER);
    expect(script.IMAGE_USER).toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
    expect(dockerfile('WORKDIR')).toBe(script.IMAGE_WORKDIR);
  });

  it('the Dockerfile has the same entrypoint, arguments and port', () => {
    expect(JSON.parse(dockerfile('ENTRYPOINT'))).toEqual(JSON.parse(script.IMAGE_ENTRYPOINT));
    expect(JSON.parse(dockerfile('CMD'))).toEqual(JSON.parse(script.IMAGE_CMD));
    expect(dockerfile('EXPOSE')).toBe(script.IMAGE_PORT);
    // node:<version>-alpine keeps node where the script puts it, on the PATH the script sets.
    expect(script.IMAGE_NODE).toBe('/usr/local/bin/node');
    expect(script.IMAGE_PATH.split(':')).toContain('/usr/local/bin');
    expect(JSON.parse(script.IMAGE_ENTRYPOINT)[1]).toBe(`${script.IMAGE_WORKDIR}/bin/mirror-synth.js`);
  });

  it('the Dockerfile copies what the script puts in the app directory', () => {
    const copies = finalStage()
      .filter((i) => i.instruction === 'COPY')
      .map((i) => i.args.replace(/^--from=\S+\s+/, ''));
    expect(copies).toEqual(['package.json package-lock.json ./', '/src/lib ./lib', 'bin ./bin', 'assets ./assets']);
    const text = readFileSync(join(root, 'scripts/build-image.sh'), 'utf8');
    expect(text).toContain('cp -r bin assets package.json "$app$IMAGE_WORKDIR/"');
    // Production dependencies only, and no optional ones (cdk8s-plus-27's `backport`, with
    // @octokit/rest and axios): test/e2e/image.test.ts checks the built image holds none.
    expect(text).toContain('npm ci --omit=dev --omit=optional --ignore-scripts');
    expect(dockerfile('RUN')).toContain('npm ci --omit=dev --omit=optional --ignore-scripts');
  });

  it('matches the Deployment: its user, its arguments, its port, a read-only root filesystem', () => {
    const [uid, gid] = script.IMAGE_USER.split(':').map(Number);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: uid, runAsGroup: gid });
    expect(container.args).toEqual(JSON.parse(script.IMAGE_CMD));
    expect(container.command).toBeUndefined();
    expect(script.IMAGE_PORT).toBe(`${CONTROLLER_METRICS_PORT}/tcp`);
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true });
  });
});
