import { KubeConfig } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';

import { CONTROLLER_DEFAULTS, resolveControllerConfig } from '../../src/controller/config.js';

describe('the controller config', () => {
  const kubeConfig = new KubeConfig();

  it('fills every setting not given from the named defaults', () => {
    const config = resolveControllerConfig({ kubeConfig, namespace: 'kube-extra' });
    expect(config).toMatchObject({
      leaseNamespace: 'kube-extra',
      workers: CONTROLLER_DEFAULTS.workers,
      resyncSeconds: 600,
      maxRetryDelayMs: 120_000,
      leaseDurationSeconds: 15,
      renewDeadlineSeconds: 10,
      retryPeriodSeconds: 2,
      requestTimeoutSeconds: 30,
      watchIdleTimeoutSeconds: 150,
      stallSeconds: 300,
      watchTimeoutSeconds: [300, 600],
      leaderElection: true,
      takeover: false,
      policy: {},
    });
    expect(config.identity).toMatch(/_[0-9a-f]{8}$/);
  });

  it('keeps what it is given, and resolving again changes nothing', () => {
    const config = resolveControllerConfig({ kubeConfig, namespace: 'ns', workers: 1, leaseNamespace: 'leases' });
    expect(config).toMatchObject({ workers: 1, leaseNamespace: 'leases' });
    expect(resolveControllerConfig(config)).toEqual(config);
  });
});
