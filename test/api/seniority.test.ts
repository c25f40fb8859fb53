import { describe, expect, it } from 'vitest';

import { holdsClaims, olderFirst } from '../../src/api/seniority.js';

describe('the older mirror wins', () => {
  const serving = { observedGeneration: 1, conditions: [{ type: 'Ready', status: 'True', reason: 'Serving' }] };
  const lost = { observedGeneration: 1, conditions: [{ type: 'Stalled', status: 'True', reason: 'NameCollision' }] };

  it('holds its claims once reconciled, unless stalled for a host or a name', () => {
    expect(holdsClaims(undefined)).toBe(false);
    expect(holdsClaims({})).toBe(false);
    expect(holdsClaims(serving)).toBe(true);
    expect(holdsClaims(lost)).toBe(false);
    expect(holdsClaims({ ...lost, conditions: [{ type: 'Stalled', status: 'True', reason: 'InvalidSpec' }] })).toBe(
      true,
    );
  });

  it('orders by creationTimestamp, then a mirror holding its claims, then name', () => {
    const sorted = [
      { name: 'a', creationTimestamp: '2025-01-02T00:00:00Z' },
      { name: 'z', creationTimestamp: '2025-01-01T00:00:00Z', holdsClaims: true },
      { name: 'b', creationTimestamp: '2025-01-01T00:00:00Z' },
      { name: 'c', creationTimestamp: '2025-01-01T00:00:00Z' },
    ].sort(olderFirst);
    expect(sorted.map((m) => m.name)).toEqual(['z', 'b', 'c', 'a']);
  });
});
