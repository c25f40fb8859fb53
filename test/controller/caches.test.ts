import { describe, expect, it } from 'vitest';

import { SecretIndex } from '../../src/controller/caches.js';

describe('the Secret index', () => {
  it('finds the mirrors referencing a Secret as mirrors are added, changed and deleted', () => {
    const index = new SecretIndex();
    index.update('quay', ['pull']);
    index.update('hub', ['pull', 'bucket']);
    expect(index.mirrorsUsing('pull')).toEqual(['quay', 'hub']);
    expect(index.mirrorsUsing('bucket')).toEqual(['hub']);
    index.update('hub', ['other']);
    expect(index.mirrorsUsing('pull')).toEqual(['quay']);
    expect(index.mirrorsUsing('bucket')).toEqual([]);
    index.update('quay', []);
    expect(index.mirrorsUsing('pull')).toEqual([]);
    expect(index.mirrorsUsing('other')).toEqual(['hub']);
    index.update('', ['pull']);
    expect(index.mirrorsUsing('pull')).toEqual([]);
  });
});
