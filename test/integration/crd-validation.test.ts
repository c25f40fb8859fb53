// The API server refuses what the CLI refuses, in the CLI's words: every invalid fixture whose
// rule the CRD can express (a pattern as CEL, a cross-field CEL rule) is created with dryRun
// against the real kube-apiserver and must fail with the fixture's expected message.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { beforeAll, describe, expect, inject, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

import { clients, GROUP, installCrd } from '../support/kube/cluster.js';

const c = clients(inject('kubeconfig'));
const dir = join(import.meta.dirname, '..', 'fixtures', 'invalid');

/**
 * Fixtures the API server answers in its own words, and why: YAML and document shape never
 * reach it; apiVersion and kind pick the endpoint; types, enums, required fields and unknown
 * fields are checked by the structural schema before CEL runs.
 */
const NOT_CEL: Record<string, string> = {
  'api-version.yaml': 'k8s.osp.tech/v2 is not served: 404',
  'kind.yaml': 'the kind is fixed by the endpoint',
  'bad-yaml.yaml': 'not YAML, never sent',
  'duplicate-key.yaml': 'not YAML, never sent',
  'not-an-object.yaml': 'not an object, never sent',
  'typo.yaml': 'unknown fields are pruned (or refused with fieldValidation=Strict) by the API server',
  'wrong-type.yaml': 'type errors come from the structural schema before CEL',
  'bad-enum.yaml': 'enum errors come from the structural schema before CEL',
  'pull-from-mirror.yaml': 'enum errors come from the structural schema before CEL',
  'missing-upstream.yaml': 'required fields are checked by the structural schema before CEL',
  's3-region.yaml': 'required fields are checked by the structural schema before CEL',
  'bad-name.yaml': "metadata.name takes no CEL rule the API server can cost; it answers with the name's pattern",
  'long-name.yaml': "metadata.name takes no CEL rule the API server can cost; it answers 'Too long'",
  'storage-zero.yaml':
    "a size's range (more than 0, less than 8Ei) is the CLI's and the controller's check; the CRD's CEL rule checks the grammar only",
  'cache-max-size.yaml':
    "spec.cache.maxSize against the volume's size (two int-or-string quantities, one defaulted) is the CLI's and the controller's check; the CRD's CEL rule checks the grammar only",
};

beforeAll(async () => {
  await installCrd(c);
});

describe('the API server speaks like the CLI', () => {
  for (const file of readdirSync(dir).sort()) {
    if (file in NOT_CEL) continue;
    it(`refuses ${file} with the CLI's message`, async () => {
      const text = readFileSync(join(dir, file), 'utf8');
      const expected = /^# expect: (.*)$/m.exec(text)![1].replace(/^mirror '[^']*': /, '');
      const body = parse(text) as Record<string, unknown>;
      let message = '';
      try {
        await c.custom.createClusterCustomObject({ ...GROUP, body, dryRun: 'All' });
      } catch (err) {
        message = String((JSON.parse((err as { body: string }).body) as { message: string }).message);
      }
      expect(message, `${file} was accepted`).not.toBe('');
      expect(message).toContain(expected);
      expect(message).not.toMatch(/should match '\^/);
    });
  }

  it('accepts a valid mirror (the rules do not refuse what the CLI accepts)', async () => {
    for (const f of readdirSync(join(dir, '..', 'mirrors')).sort()) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, '..', 'mirrors', f), 'utf8'))) {
        const body = doc.toJS() as Record<string, unknown>;
        await c.custom.createClusterCustomObject({ ...GROUP, body, dryRun: 'All' });
      }
    }
  });

  it('documents every field for kubectl explain', async () => {
    const crd = await c.ext.readCustomResourceDefinition({ name: `${GROUP.plural}.${GROUP.group}` });
    const missing: string[] = [];
    const walk = (node: { description?: string; properties?: object; items?: object }, path: string) => {
      if (!node.description && !path.startsWith('RegistryMirror.metadata')) missing.push(path);
      for (const [k, v] of Object.entries(node.properties ?? {})) walk(v as typeof node, `${path}.${k}`);
      if (node.items) walk(node.items, `${path}[]`);
    };
    walk(crd.spec.versions[0].schema!.openAPIV3Schema!, 'RegistryMirror');
    expect(missing).toEqual([]);
  });
});
