// The config's static `services:` list (config/services.ts).
import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';

describe('services in the sidecar config', () => {
  test('entries in the PRODUCT.md form and the long form', () => {
    const config = parseConfig({
      services: [
        { namespace: 'shop', name: 'payments', clusterIPs: ['10.96.0.20'], ports: [80], selector: { app: 'payments' } },
        { namespace: 'shop', name: 'db', clusterIP: '10.96.0.30', ports: [{ port: 5432, targetPort: 'pg', protocol: 'TCP' }], endpoints: ['192.0.2.7'] },
      ],
    }, '/etc/sidewall/config.yaml');
    expect(config.services).toEqual([
      { namespace: 'shop', name: 'payments', clusterIPs: ['10.96.0.20'], ports: [{ port: 80 }], selector: { app: 'payments' } },
      { namespace: 'shop', name: 'db', clusterIPs: ['10.96.0.30'], ports: [{ port: 5432, targetPort: 'pg', protocol: 'TCP' }], endpoints: ['192.0.2.7'] },
    ]);
  });

  test('every problem is named with its path', () => {
    let message = '';
    try {
      parseConfig({
        services: [
          { namespace: 'Shop', name: 'payments', clusterIPs: ['10.96.0.400'], ports: [0], colour: 'red' },
          { namespace: 'shop', name: 'a', clusterIPs: ['10.96.0.1'] },
          { namespace: 'shop', name: 'b', clusterIPs: ['10.96.0.1'] },
        ],
      }, 'c.yaml');
    } catch (err) {
      message = (err as Error).message;
    }
    for (const part of ['services[0].colour', 'services[0].namespace', 'services[0].clusterIPs[0]', 'services[0].ports[0]', 'services[2].clusterIPs: 10.96.0.1 is already the cluster IP of shop/a']) expect(message).toContain(part);
  });
});
