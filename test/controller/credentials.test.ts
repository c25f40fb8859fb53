import { describe, expect, it } from 'vitest';

import {
  extractDockerAuth,
  normalizeRegistryHost,
  referencedSecrets,
  resolveCredentials,
  resolveObjectStorageCredentials,
} from '../../src/controller/credentials.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const PASSWORD = 's3cr3t-Pa55';

function dockerSecret(auths: Record<string, unknown>) {
  return {
    metadata: { annotations: OPT_IN, name: 'pull', uid: 'uid-1' },
    type: 'kubernetes.io/dockerconfigjson',
    data: { '.dockerconfigjson': b64(JSON.stringify({ auths })) },
  };
}

const base = { mirror: 'quay', upstreamUrl: 'quay.io', namespace: 'kube-extra' };
/** The Secret lets mirror quay send it to quay.io (and to its bucket's endpoint). */
const OPT_IN = { 'mirror-synth.k8s.osp.tech/mirrors': 'other@quay.io, quay@quay.io, quay@s3.storage:8333' };

describe('resolveCredentials', () => {
  it('returns nothing for a mirror without credentialsSecret', () => {
    expect(resolveCredentials({ ...base, credentialsSecret: undefined, secret: undefined })).toBeUndefined();
  });

  it('stalls with an actionable message when the Secret is missing', () => {
    const r = resolveCredentials({ ...base, credentialsSecret: 'quay-creds', secret: undefined });
    expect(r).toMatchObject({ ok: false, reason: 'CredentialsSecretNotFound' });
    expect(r && !r.ok && r.message).toContain('Secret kube-extra/quay-creds (spec.credentialsSecret) does not exist');
  });

  it('accepts a Secret with username and password and hashes them', () => {
    const secret = {
      metadata: { annotations: OPT_IN, name: 'quay-creds', uid: 'u' },
      data: { username: b64('bot'), password: b64(PASSWORD) },
    };
    const r = resolveCredentials({ ...base, credentialsSecret: 'quay-creds', secret });
    expect(r).toMatchObject({ ok: true, secretName: 'quay-creds' });
    expect(r && r.ok && r.derived).toBeUndefined();
  });

  it('uses a Secret only for the mirrors its annotation lists, and says how to opt in', () => {
    const data = { username: b64('bot'), password: b64(PASSWORD) };
    const none = resolveCredentials({
      ...base,
      credentialsSecret: 'quay-creds',
      secret: { metadata: { name: 'quay-creds', uid: 'u' }, data },
    });
    expect(none).toMatchObject({ ok: false, reason: 'CredentialsSecretNotOptedIn' });
    expect(none && !none.ok && none.message).toBe(
      "Secret kube-extra/quay-creds (spec.credentialsSecret) does not list quay@quay.io (mirror 'quay', sent to quay.io) in its annotation " +
        'mirror-synth.k8s.osp.tech/mirrors, so it is not sent there. If this mirror may send it to that host, let it with ' +
        'kubectl -n kube-extra annotate secret quay-creds --overwrite mirror-synth.k8s.osp.tech/mirrors=quay@quay.io',
    );
    // The opt-in names the host: a mirror retargeted at another upstream (by whoever may update
    // it, or recreate it under the same name) does not take the Secret along.
    const retargeted = resolveCredentials({
      ...base,
      upstreamUrl: 'evil.example.net',
      credentialsSecret: 'quay-creds',
      secret: { metadata: { annotations: OPT_IN, name: 'quay-creds', uid: 'u' }, data },
    });
    expect(retargeted).toMatchObject({ ok: false, reason: 'CredentialsSecretNotOptedIn' });
    expect(retargeted && !retargeted.ok && retargeted.message).toContain(
      'mirror-synth.k8s.osp.tech/mirrors=other@quay.io,quay@quay.io,quay@s3.storage:8333,quay@evil.example.net',
    );
    // An entry of the mirror alone (no host) opts in to nothing; Docker Hub's spellings are one host.
    const bare = { 'mirror-synth.k8s.osp.tech/mirrors': 'quay' };
    expect(
      resolveCredentials({
        ...base,
        credentialsSecret: 'quay-creds',
        secret: { metadata: { annotations: bare, uid: 'u' }, data },
      }),
    ).toMatchObject({ ok: false, reason: 'CredentialsSecretNotOptedIn' });
    const hub = { 'mirror-synth.k8s.osp.tech/mirrors': 'hub@registry-1.docker.io' };
    expect(
      resolveCredentials({
        ...base,
        mirror: 'hub',
        upstreamUrl: 'docker.io',
        credentialsSecret: 'hub-creds',
        secret: { metadata: { annotations: hub, uid: 'u' }, data },
      }),
    ).toMatchObject({ ok: true });
    // Another mirror's opt-in is not this one's; the command keeps the mirrors already listed.
    const others = resolveCredentials({
      ...base,
      credentialsSecret: 'quay-creds',
      secret: {
        metadata: {
          uid: 'u',
          annotations: { 'mirror-synth.k8s.osp.tech/mirrors': 'quay2@quay.io,dockerhub@docker.io' },
        },
        data,
      },
    });
    expect(others).toMatchObject({ ok: false, reason: 'CredentialsSecretNotOptedIn' });
    expect(others && !others.ok && others.message).toContain(
      'mirror-synth.k8s.osp.tech/mirrors=quay2@quay.io,dockerhub@docker.io,quay@quay.io',
    );
    expect(others && !others.ok && others.message).not.toContain(PASSWORD);
    // A dockerconfigjson Secret is not copied into the derived Secret without it either.
    const docker = dockerSecret({ 'quay.io': { username: 'x', password: PASSWORD } });
    const derived = resolveCredentials({
      ...base,
      credentialsSecret: 'pull',
      secret: { ...docker, metadata: { name: 'pull', uid: 'uid-1' } },
    });
    expect(derived).toMatchObject({ ok: false, reason: 'CredentialsSecretNotOptedIn' });
  });

  it('names the missing keys without printing any value', () => {
    const secret = {
      metadata: { annotations: OPT_IN, name: 'quay-creds' },
      data: { user: b64('bot'), password: b64(PASSWORD) },
    };
    const r = resolveCredentials({ ...base, credentialsSecret: 'quay-creds', secret });
    expect(r).toMatchObject({ ok: false, reason: 'CredentialsSecretInvalid' });
    const msg = r && !r.ok ? r.message : '';
    expect(msg).toContain('has no key username');
    expect(msg).not.toContain(PASSWORD);
    expect(msg).not.toContain(b64(PASSWORD));
  });

  it('derives a Secret from a dockerconfigjson entry for the upstream host', () => {
    const secret = dockerSecret({
      'https://quay.io': { auth: b64(`robot+ci:${PASSWORD}`) },
      'ghcr.io': { username: 'x', password: 'y' },
    });
    const r = resolveCredentials({ ...base, credentialsSecret: 'pull', secret });
    expect(r).toMatchObject({ ok: true, secretName: 'registry-mirror-quay-credentials' });
    const derived = r && r.ok ? r.derived : undefined;
    expect(derived).toMatchObject({
      kind: 'Secret',
      metadata: { name: 'registry-mirror-quay-credentials', namespace: 'kube-extra', labels: { mirror: 'quay' } },
      data: { username: b64('robot+ci'), password: b64(PASSWORD) },
    });
  });

  it('finds Docker Hub under its legacy index key', () => {
    const docker = dockerSecret({ 'https://index.docker.io/v1/': { username: 'me', password: PASSWORD } });
    const secret = {
      ...docker,
      metadata: { ...docker.metadata, annotations: { 'mirror-synth.k8s.osp.tech/mirrors': 'quay@docker.io' } },
    };
    const r = resolveCredentials({ ...base, upstreamUrl: 'docker.io', credentialsSecret: 'pull', secret });
    expect(r).toMatchObject({ ok: true });
  });

  it('stalls when the dockerconfigjson has no entry for the host, naming the hosts it has', () => {
    const secret = dockerSecret({ 'ghcr.io': { username: 'x', password: PASSWORD } });
    const r = resolveCredentials({ ...base, credentialsSecret: 'pull', secret });
    expect(r).toMatchObject({ ok: false, reason: 'CredentialsSecretInvalid' });
    const msg = r && !r.ok ? r.message : '';
    expect(msg).toContain('no auths entry for quay.io (hosts found: ghcr.io)');
    expect(msg).not.toContain(PASSWORD);
  });

  it('never falls back to a guessable HMAC key: a Secret without a uid is not hashed', () => {
    const secret = {
      metadata: { annotations: OPT_IN, name: 'quay-creds' },
      data: { username: b64('bot'), password: b64(PASSWORD) },
    };
    const r = resolveCredentials({ ...base, credentialsSecret: 'quay-creds', secret });
    expect(r).toMatchObject({ ok: false, reason: 'CredentialsSecretInvalid' });
    expect(r && !r.ok && r.message).toContain('has no metadata.uid');
    const docker = {
      ...dockerSecret({ 'quay.io': { username: 'x', password: PASSWORD } }),
      metadata: { annotations: OPT_IN, name: 'pull' },
    };
    expect(resolveCredentials({ ...base, credentialsSecret: 'pull', secret: docker })).toMatchObject({ ok: false });
  });

  it('keys the hash by the Secret uid', () => {
    const mk = (uid: string) =>
      resolveCredentials({
        ...base,
        credentialsSecret: 'c',
        secret: { metadata: { annotations: OPT_IN, uid }, data: { username: b64('bot'), password: b64(PASSWORD) } },
      });
    const a = mk('u1');
    const b = mk('u2');
    expect(a && a.ok && b && b.ok && a.hash !== b.hash && a.hmacKey === 'u1').toBe(true);
  });

  it('changes the hash when the password changes, not when an unrelated key does', () => {
    const mk = (password: string, extra = {}) =>
      resolveCredentials({
        ...base,
        credentialsSecret: 'c',
        secret: {
          metadata: { annotations: OPT_IN, uid: 'u' },
          data: { username: b64('bot'), password: b64(password), ...extra },
        },
      });
    const a = mk('one');
    const b = mk('two');
    const c = mk('one', { note: b64('hello') });
    expect(a && a.ok && b && b.ok && a.hash !== b.hash).toBe(true);
    expect(a && a.ok && c && c.ok && a.hash === c.hash).toBe(true);
  });
});

describe('docker config helpers', () => {
  it('normalizes registry keys', () => {
    expect(normalizeRegistryHost('https://Index.Docker.io/v1/')).toBe('docker.io');
    expect(normalizeRegistryHost('registry.example.com:5000/path')).toBe('registry.example.com:5000');
  });

  it('reports broken JSON without echoing it', () => {
    expect(extractDockerAuth(`{"auths": ${PASSWORD}`, 'quay.io')).toEqual({
      error: 'its .dockerconfigjson is not valid JSON',
    });
  });
});

describe('resolveObjectStorageCredentials', () => {
  const bucket = {
    mirror: 'quay',
    endpoint: 'http://s3.storage:8333',
    namespace: 'kube-extra',
    secretName: 'bucket-key',
  };
  const KEY = 'bucket-Secret-77';
  const secret = (data: Record<string, string>, annotations: Record<string, string> = OPT_IN, uid = 'u-1') => ({
    metadata: { annotations, name: 'bucket-key', uid },
    data,
  });

  it('returns nothing without a bucket Secret (the pod identity is used)', () => {
    expect(resolveObjectStorageCredentials({ ...bucket, secretName: undefined, secret: undefined })).toBeUndefined();
  });

  it('hashes accessKey and secretKey, and a new key gives a new hash (the pods roll)', () => {
    const a = resolveObjectStorageCredentials({
      ...bucket,
      secret: secret({ accessKey: b64('AK'), secretKey: b64(KEY) }),
    });
    const b = resolveObjectStorageCredentials({
      ...bucket,
      secret: secret({ accessKey: b64('AK'), secretKey: b64('new') }),
    });
    expect(a).toMatchObject({ ok: true });
    expect(b).toMatchObject({ ok: true });
    expect(a && a.ok && a.hash).not.toBe(b && b.ok && b.hash);
    expect(JSON.stringify(a)).not.toContain(KEY);
  });

  it('stalls, naming the field and what to do, when the Secret is missing, not opted in or incomplete', () => {
    const missing = resolveObjectStorageCredentials({ ...bucket, secret: undefined });
    expect(missing).toMatchObject({ ok: false, reason: 'ObjectStorageSecretNotFound' });
    expect(missing && !missing.ok && missing.message).toContain(
      'Secret kube-extra/bucket-key (spec.objectStorage.s3.credentialsSecret) does not exist',
    );
    const notIn = resolveObjectStorageCredentials({
      ...bucket,
      secret: secret({ accessKey: b64('AK'), secretKey: b64(KEY) }, {}),
    });
    expect(notIn).toMatchObject({ ok: false, reason: 'ObjectStorageSecretNotOptedIn' });
    expect(notIn && !notIn.ok && notIn.message).toContain(
      'kubectl -n kube-extra annotate secret bucket-key --overwrite mirror-synth.k8s.osp.tech/mirrors=quay@s3.storage:8333',
    );
    expect(notIn && !notIn.ok && notIn.message).toContain('http://s3.storage:8333');
    const partial = resolveObjectStorageCredentials({ ...bucket, secret: secret({ accessKey: b64('AK') }) });
    expect(partial).toMatchObject({ ok: false, reason: 'ObjectStorageSecretInvalid' });
    expect(partial && !partial.ok && partial.message).toContain('has no value for key secretKey');
  });

  it('lists both Secrets a spec names, for the watches', () => {
    expect(
      referencedSecrets({
        credentialsSecret: 'up',
        objectStorage: { s3: { bucket: 'b', region: 'r', credentialsSecret: 'bucket-key' } },
      }),
    ).toEqual(['up', 'bucket-key']);
    expect(referencedSecrets({ upstreamUrl: 'quay.io' })).toEqual([]);
  });
});
