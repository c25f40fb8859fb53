// The controller image has two recipes: scripts/build-image.sh (umoci, built and run by
// test/e2e/image.test.ts) and the Dockerfile (for users with Docker; no engine here to build
// it). This keeps them describing the same image, and both matching the Deployment that runs it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import type { KubeObject } from '../../src/api/kube-object.js';
import { CONTROLLER_METRICS_PORT, CONTROLLER_NAME } from '../../src/api/names.js';
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

  it('the Dockerfile runs as the same numeric non-root user, from the same directory', () => {
    expect(dockerfile('USER')).toBe(script.IMAGE_USER);
    expect(script.IMAGE_USER).toMatch(/^[1-9][0-9]*:[1-9][0-9]*$/);
    expect(dockerfile('WORKDIR')).toBe(script.IMAGE_WORKDIR);
  });

  it('the Dockerfile has the same entrypoint, arguments and port', () => {
    expect(JSON.parse(dockerfile('ENTRYPOINT'))).toEqual(JSON.parse(script.IMAGE_ENTRYPOINT));
    expect(JSON.parse(dockerfile('CMD'))).toEqual(JSON.parse(script.IMAGE_CMD));
    expect(dockerfile('EXPOSE')).toBe(script.IMAGE_PORT);
    // node:20-alpine keeps node where the script puts it, on the PATH the script sets.
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
    expect(text).toContain('npm ci --omit=dev --ignore-scripts');
    expect(dockerfile('RUN')).toContain('npm ci --omit=dev --ignore-scripts');
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
