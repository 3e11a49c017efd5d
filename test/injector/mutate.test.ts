import { describe, expect, it } from 'vitest';
import {
  CONTROLLER_CA_FILE, IDENTITY_TOKEN_FILE, LEARN_STATE_DIR, InjectorSettingsError, defaultInjectorSettings, injectedContainers, mutatePod, resolveContainerEnv, resolveInjectorSettings,
  type InjectorSettings, type Pod,
} from '../../injector/index.js';
import { admitPod, findContainer, flagValue } from './helpers.js';
import { barePod, hostNetworkPod, jobPod, podCreateReview, replicaSetPod, statefulSetPod } from './fixtures.js';
import { DEFAULT_LEARN } from '../../src/config/load.js';

const settings = defaultInjectorSettings();
const legacy: InjectorSettings = { ...defaultInjectorSettings(), nativeSidecar: false };

describe('mutating webhook: a Deployment pod (generateName, no name yet)', () => {
  const review = podCreateReview(replicaSetPod(), { namespace: 'shop' });
  const { pod, response } = admitPod(review, settings);
  const init = pod.spec!.initContainers!;

  it('adds sidewall-init first and the native sidecar right after it', () => {
    expect(init.map((c) => c.name)).toEqual(['sidewall-init', 'sidewall-proxy']);
    expect(init[1]!.restartPolicy).toBe('Always');
    expect(init[0]!.restartPolicy).toBeUndefined();
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['cart']);
  });

  it('gives sidewall-init only NET_ADMIN and NET_RAW and the documented init flags', () => {
    const sc = init[0]!.securityContext!;
    expect(sc.capabilities).toEqual({ add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
    expect(sc.privileged).toBe(false);
    expect(sc.allowPrivilegeEscalation).toBe(false);
    expect(init[0]!.command).toEqual(['sidewall']);
    const args = init[0]!.args!;
    expect(args[0]).toBe('init');
    expect(flagValue(args, '--proxy-uid')).toBe('1337');
    expect(flagValue(args, '--proxy-gid')).toBe('1337');
    expect(flagValue(args, '--inbound-port')).toBe('15006');
    expect(flagValue(args, '--outbound-port')).toBe('15001');
    expect(flagValue(args, '--admin-port')).toBe('15000');
    expect(args).toContain('--redirect-dns');
    expect(args).not.toContain('--exclude-inbound-ports');
  });

  it('runs sidewall-proxy as 1337 with a read-only root filesystem and NET_ADMIN as its only capability, through the caps launcher', () => {
    const proxy = init[1]!;
    expect(proxy.securityContext).toEqual({
      runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, privileged: false, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN'], drop: ['ALL'] },
    });
    // As uid 1337 the runtime leaves NET_ADMIN in the permitted set only; the image's setpriv copy
    // (file capability cap_net_admin=p) makes it ambient before it execs `sidewall`.
    expect(proxy.command).toEqual(['/usr/local/bin/sidewall-caps', '--inh-caps=+net_admin', '--ambient-caps=+net_admin', '--', 'sidewall']);
    expect(proxy.args).toEqual(['proxy', '--config', '/etc/sidewall/config/config.yaml']);
    expect(proxy.readinessProbe!.httpGet).toMatchObject({ path: '/ready', port: 15000 });
    expect(proxy.startupProbe!.httpGet).toMatchObject({ path: '/ready', port: 15000 });
    expect(proxy.resources).toEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });
  });

  it('passes the pod identity through env and the downward API folder', () => {
    const proxy = init[1]!;
    const env = Object.fromEntries((proxy.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
    expect(env.POD_NAME).toBe('metadata.name');
    expect(env.POD_NAMESPACE).toBe('metadata.namespace');
    expect(env.POD_IP).toBe('status.podIP');
    expect(env.POD_IPS).toBe('status.podIPs');
    const mounts = Object.fromEntries((proxy.volumeMounts ?? []).map((m) => [m.mountPath, m.name]));
    expect(mounts['/etc/sidewall/pod']).toBe('sidewall-pod-info');
    expect(mounts['/etc/sidewall/config']).toBe('sidewall-config');
    expect(mounts['/etc/sidewall/cluster']).toBe('sidewall-cluster-rules');
    const podInfo = pod.spec!.volumes!.find((v) => v.name === "sidewall-pod-info") as unknown as { downwardAPI: { items: Array<{ path: string; fieldRef: { fieldPath: string } }> } };
    expect(Object.fromEntries(podInfo.downwardAPI.items.map((i) => [i.path, i.fieldRef.fieldPath]))).toEqual({
      annotations: 'metadata.annotations', labels: 'metadata.labels', name: 'metadata.name', namespace: 'metadata.namespace',
    });
    const cluster = pod.spec!.volumes!.find((v) => v.name === "sidewall-cluster-rules") as unknown as { configMap: { name: string } };
    expect(cluster.configMap.name).toBe('sidewall-cluster-rules');
    // The ServiceAccount admission plugin's volume is still there, untouched, first.
    expect(pod.spec!.volumes![0]!.name).toBe('kube-api-access-x7k2p');
  });

  it('rewrites the app probes through the admin port and hands the originals to the sidecar', () => {
    const app = findContainer(pod.spec!.containers, 'cart');
    expect(app.livenessProbe).toMatchObject({ httpGet: { path: '/app-health/cart/livez', port: 15000, scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 2, failureThreshold: 3 });
    expect(app.readinessProbe).toMatchObject({ httpGet: { path: '/app-health/cart/readyz', port: 15000 }, periodSeconds: 5 });
    expect(app.readinessProbe!.tcpSocket).toBeUndefined();
    const probesEnv = init[1]!.env!.find((e) => e.name === 'SIDEWALL_APP_PROBES')!.value!;
    expect(JSON.parse(probesEnv)).toEqual({
      '/app-health/cart/livez': { httpGet: { port: 8080, path: '/healthz', scheme: 'HTTP', httpHeaders: [] }, timeoutSeconds: 2 },
      '/app-health/cart/readyz': { tcpSocket: { port: 8080 }, timeoutSeconds: 1 },
    });
  });

  it('marks the pod injected and answers without warnings', () => {
    expect(pod.metadata!.annotations!['sidewall.io/status']).toBe('injected');
    expect(pod.metadata!.name).toBeUndefined();
    expect(pod.metadata!.generateName).toBe('cart-7d9f8b6c4-');
    expect(response.warnings).toBeUndefined();
  });

  it('changes nothing on a second pass (reinvocation or re-submission)', () => {
    const again = mutatePod(pod, settings);
    expect(again.patch).toEqual([]);
    expect(again.skipped).toMatch(/already injected/);
    const review2 = podCreateReview(pod as Record<string, unknown>, { namespace: 'shop' });
    const second = admitPod(review2, settings);
    expect(second.pod).toEqual(pod);
    expect(second.response.patch).toBeUndefined();
  });
});

describe('mutating webhook: other pod shapes', () => {
  it("a Job's pod gets a native sidecar so the Job completes, and its exclusions reach sidewall init", () => {
    const { pod } = admitPod(podCreateReview(jobPod(), { namespace: 'ops', user: 'system:serviceaccount:kube-system:job-controller' }), settings);
    expect(pod.spec!.restartPolicy).toBe('Never');
    const [init, proxy] = pod.spec!.initContainers!;
    expect(proxy!.name).toBe('sidewall-proxy');
    expect(proxy!.restartPolicy).toBe('Always');
    expect(flagValue(init!.args, '--exclude-outbound-ports')).toBe('5432');
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['backup']);
    // The job-tracking finalizer and annotations are preserved.
    expect(pod.metadata!.annotations!['batch.kubernetes.io/job-tracking']).toBe('');
  });

  it('a bare pod without annotations, volumes or init containers gets all three created', () => {
    const { pod } = admitPod(podCreateReview(barePod(), { namespace: 'shop', name: 'debug', user: 'alice@example.com', groups: ['system:authenticated'] }), settings);
    expect(pod.metadata!.annotations).toEqual({ 'sidewall.io/status': 'injected' });
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['sidewall-init', 'sidewall-proxy']);
    expect(pod.spec!.volumes!.map((v) => v.name).sort()).toEqual(['sidewall-cluster-rules', 'sidewall-config', 'sidewall-learn', 'sidewall-pod-info', 'sidewall-tmp']);
    // Learn mode's model on the pod's own volume (never a node-wide /tmp file), where the
    // sidecar config's default learn.stateFile points.
    const proxy = pod.spec!.initContainers![1]!;
    expect(proxy.volumeMounts!.find((m) => m.name === 'sidewall-learn')?.mountPath).toBe(LEARN_STATE_DIR);
    expect(DEFAULT_LEARN.stateFile.startsWith(`${LEARN_STATE_DIR}/`)).toBe(true);
    expect(pod.spec!.volumes!.find((v) => v.name === 'sidewall-learn')).toMatchObject({ emptyDir: {} });
    // No probes to rewrite: no SIDEWALL_APP_PROBES.
    expect(pod.spec!.initContainers![1]!.env!.map((e) => e.name)).not.toContain('SIDEWALL_APP_PROBES');
  });

  it("a StatefulSet pod keeps its own init container after the sidecar and gets its annotations' knobs", () => {
    const { pod } = admitPod(podCreateReview(statefulSetPod(), { namespace: 'shop', name: 'db-0', user: 'system:serviceaccount:kube-system:statefulset-controller' }), settings);
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['sidewall-init', 'sidewall-proxy', 'fix-perms']);
    const init = pod.spec!.initContainers![0]!;
    expect(flagValue(init.args, '--exclude-inbound-ports')).toBe('22,9187');
    const proxy = pod.spec!.initContainers![1]!;
    expect(proxy.resources).toEqual({ requests: { cpu: '200m', memory: '64Mi' }, limits: { memory: '512Mi' } });
    const app = findContainer(pod.spec!.containers, 'postgres');
    expect(app.startupProbe).toMatchObject({ httpGet: { path: '/app-health/postgres/startupz', port: 15000 }, failureThreshold: 30, periodSeconds: 2 });
    expect(JSON.parse(proxy.env!.find((e) => e.name === 'SIDEWALL_APP_PROBES')!.value!)).toEqual({
      '/app-health/postgres/startupz': { tcpSocket: { port: 5432 }, timeoutSeconds: 1 },
    });
  });

  it('an opted-out pod is admitted unchanged', () => {
    const { response, pod } = admitPod(podCreateReview(replicaSetPod({ 'sidewall.io/inject': 'false' }), { namespace: 'shop' }), settings);
    expect(response.patch).toBeUndefined();
    expect(pod.spec!.initContainers).toBeUndefined();
    expect(response.auditAnnotations?.injection).toMatch(/opted out/);
  });

  it('a hostNetwork pod in a namespace the security team exempted is skipped with a warning the user sees', () => {
    const exempt: InjectorSettings = { ...defaultInjectorSettings(), stepAround: { ...defaultInjectorSettings().stepAround, exemptNamespaces: ['monitoring'] } };
    const { response, pod } = admitPod(podCreateReview(hostNetworkPod(), { namespace: 'monitoring', user: 'system:serviceaccount:kube-system:daemon-set-controller' }), exempt);
    expect(response.patch).toBeUndefined();
    expect(pod.spec!.initContainers).toBeUndefined();
    expect(response.warnings?.join('\n')).toMatch(/hostNetwork.*NOT protected/);
  });

  it('invalid knob annotations are ignored with a warning, valid ones still apply', () => {
    const original = replicaSetPod({ 'sidewall.io/exclude-outbound-cidrs': '169.254.169.254/32,10.0.0.0/33', 'sidewall.io/proxy-cpu-limit': 'lots' });
    const { response, pod } = admitPod(podCreateReview(original, { namespace: 'shop' }), settings);
    expect(flagValue(pod.spec!.initContainers![0]!.args, '--exclude-outbound-cidrs')).toBe('169.254.169.254/32');
    expect(response.warnings!.some((w) => w.includes("'10.0.0.0/33'"))).toBe(true);
    expect(response.warnings!.some((w) => w.includes("'lots'"))).toBe(true);
    expect(pod.spec!.initContainers![1]!.resources!.limits).toEqual({ memory: '256Mi' });
  });

  it('cluster-wide exclusions from the settings are merged with the pod annotations', () => {
    const custom: InjectorSettings = { ...defaultInjectorSettings(), excludeOutboundCidrs: ['169.254.169.254/32'], excludeInboundPorts: [22], iptablesBackend: 'nft', redirectDns: false };
    const { pod } = admitPod(podCreateReview(statefulSetPod(), { namespace: 'shop', name: 'db-0' }), custom);
    const args = pod.spec!.initContainers![0]!.args!;
    expect(flagValue(args, '--exclude-inbound-ports')).toBe('22,9187');
    expect(flagValue(args, '--exclude-outbound-cidrs')).toBe('169.254.169.254/32');
    expect(flagValue(args, '--backend')).toBe('nft');
    expect(args).not.toContain('--redirect-dns');
  });
});

describe('mutating webhook: legacy sidecar mode (nativeSidecar: false, Kubernetes < 1.29)', () => {
  it('puts the proxy first among the containers, without restartPolicy, and keeps kubectl on the app', () => {
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), legacy);
    expect(pod.spec!.initContainers!.map((c) => c.name)).toEqual(['sidewall-init']);
    expect(pod.spec!.containers.map((c) => c.name)).toEqual(['sidewall-proxy', 'cart']);
    expect(pod.spec!.containers[0]!.restartPolicy).toBeUndefined();
    expect(pod.metadata!.annotations!['kubectl.kubernetes.io/default-container']).toBe('cart');
    // The probe rewrite still lands on the app container, not on the inserted proxy.
    expect(findContainer(pod.spec!.containers, 'cart').livenessProbe!.httpGet!.path).toBe('/app-health/cart/livez');
    expect(findContainer(pod.spec!.containers, 'sidewall-proxy').livenessProbe!.httpGet!.path).toBe('/live');
  });

  it('warns that a Job pod will not complete', () => {
    const { response } = admitPod(podCreateReview(jobPod(), { namespace: 'ops' }), legacy);
    expect(response.warnings!.join('\n')).toMatch(/never completes/);
  });
});

describe('mutatePod as a library (the demo uses it)', () => {
  it('is pure: the input pod is not modified', () => {
    const pod = replicaSetPod() as Pod;
    const before = structuredClone(pod);
    mutatePod(pod, settings);
    expect(pod).toEqual(before);
  });
});

describe('reading the injection back for the demo', () => {
  it('returns the init and proxy containers and resolves the proxy environment like the kubelet', () => {
    const result = mutatePod(replicaSetPod() as Pod, settings);
    const containers = injectedContainers(result)!;
    expect(containers.init.args![0]).toBe('init');
    expect(containers.proxy.args).toEqual(['proxy', '--config', '/etc/sidewall/config/config.yaml']);
    const env = resolveContainerEnv(containers.proxy, { 'metadata.name': 'cart-7d9f8b6c4-abcde', 'metadata.namespace': 'shop', 'status.podIP': '10.0.0.5' });
    expect(env.POD_NAME).toBe('cart-7d9f8b6c4-abcde');
    expect(env.POD_IP).toBe('10.0.0.5');
    expect(JSON.parse(env.SIDEWALL_APP_PROBES!)['/app-health/cart/livez'].httpGet.port).toBe(8080);
    expect(injectedContainers(mutatePod(hostNetworkPod() as Pod, settings))).toBeUndefined();
  });

  it('finds the containers in legacy mode too', () => {
    const containers = injectedContainers(mutatePod(statefulSetPod() as Pod, legacy))!;
    expect(containers.proxy.restartPolicy).toBeUndefined();
    expect(containers.init.args).toContain('--exclude-inbound-ports');
  });
});

describe('mutating webhook: credentials for the identity controller (issue 8)', () => {
  const identity: InjectorSettings = {
    ...defaultInjectorSettings(),
    identity: { audience: 'sidewall-controller', expirationSeconds: 3600, caConfigMap: 'sidewall-controller-ca' },
  };
  const allContainers = (pod: Pod) => [...(pod.spec!.initContainers ?? []), ...pod.spec!.containers];
  const mountsOf = (pod: Pod, volume: string) => allContainers(pod).filter((c) => (c.volumeMounts ?? []).some((m) => m.name === volume)).map((c) => c.name);

  it('projects a token for the controller audience and mounts it, with the CA, into sidewall-proxy only', () => {
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), identity);
    const token = pod.spec!.volumes!.find((v) => v.name === 'sidewall-identity-token') as unknown as { projected: { defaultMode: number; sources: unknown[] } };
    expect(token.projected.sources).toEqual([{ serviceAccountToken: { audience: 'sidewall-controller', expirationSeconds: 3600, path: 'token' } }]);
    // uid 1337 must be able to read it whatever owner the kubelet gives the file.
    expect(token.projected.defaultMode & 0o004).toBe(0o004);
    const ca = pod.spec!.volumes!.find((v) => v.name === 'sidewall-controller-ca') as unknown as { configMap: { name: string; items: unknown[] } };
    expect(ca.configMap).toEqual({ name: 'sidewall-controller-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] });

    expect(mountsOf(pod, 'sidewall-identity-token')).toEqual(['sidewall-proxy']);
    expect(mountsOf(pod, 'sidewall-controller-ca')).toEqual(['sidewall-proxy']);
    const proxy = findContainer(pod.spec!.initContainers, 'sidewall-proxy');
    const mounts = Object.fromEntries((proxy.volumeMounts ?? []).map((m) => [m.name, m]));
    expect(mounts['sidewall-identity-token']).toEqual({ name: 'sidewall-identity-token', mountPath: '/var/run/secrets/sidewall', readOnly: true });
    expect(mounts['sidewall-controller-ca']).toEqual({ name: 'sidewall-controller-ca', mountPath: '/etc/sidewall/ca', readOnly: true });
    // The files the chart's sidecar config names are where the mounts put them.
    expect(IDENTITY_TOKEN_FILE).toBe(`${mounts['sidewall-identity-token']!.mountPath}/token`);
    expect(CONTROLLER_CA_FILE).toBe(`${mounts['sidewall-controller-ca']!.mountPath}/ca.crt`);
    // The app keeps its own API token mount and gets nothing else.
    const app = findContainer(pod.spec!.containers, 'cart');
    expect((app.volumeMounts ?? []).map((m) => m.mountPath)).toEqual(['/var/run/secrets/kubernetes.io/serviceaccount']);
  });

  it('works for a pod without volumes or its own token (automountServiceAccountToken: false) and in legacy mode', () => {
    const bare = admitPod(podCreateReview(barePod(), { namespace: 'shop', name: 'debug' }), identity).pod;
    expect(bare.spec!.volumes!.map((v) => v.name).sort()).toEqual([
      'sidewall-cluster-rules', 'sidewall-config', 'sidewall-controller-ca', 'sidewall-identity-token', 'sidewall-learn', 'sidewall-pod-info', 'sidewall-tmp',
    ]);
    const old = admitPod(podCreateReview(statefulSetPod(), { namespace: 'shop', name: 'db-0' }), { ...identity, nativeSidecar: false }).pod;
    expect(old.spec!.containers[0]!.name).toBe('sidewall-proxy');
    expect(mountsOf(old, 'sidewall-identity-token')).toEqual(['sidewall-proxy']);
  });

  it('without a CA ConfigMap the token is still mounted (a plaintext controller)', () => {
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), { ...identity, identity: { audience: 'ids', expirationSeconds: 7200 } });
    expect(pod.spec!.volumes!.some((v) => v.name === 'sidewall-controller-ca')).toBe(false);
    const token = pod.spec!.volumes!.find((v) => v.name === 'sidewall-identity-token') as unknown as { projected: { sources: Array<{ serviceAccountToken: { audience: string; expirationSeconds: number } }> } };
    expect(token.projected.sources[0]!.serviceAccountToken).toMatchObject({ audience: 'ids', expirationSeconds: 7200 });
  });

  it('adds none of it when the settings have no identity (controller.enabled=false)', () => {
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), settings);
    const names = pod.spec!.volumes!.map((v) => v.name);
    expect(names).not.toContain('sidewall-identity-token');
    expect(names).not.toContain('sidewall-controller-ca');
    expect(JSON.stringify(pod)).not.toContain('serviceAccountToken":{"audience');
  });

  it('leaves a pod alone whose volume name collides with the token volume', () => {
    const pod = barePod() as Pod;
    pod.spec!.volumes = [{ name: 'sidewall-identity-token', emptyDir: {} }];
    expect(mutatePod(pod, identity).skipped).toBe('the pod already has a volume named sidewall-identity-token');
  });

  it('reads identity from the settings file, refusing what the API server would refuse', () => {
    expect(resolveInjectorSettings({ identity: { audience: 'a', expirationSeconds: 900, caConfigMap: 'ca' } }, 't').identity).toEqual({ audience: 'a', expirationSeconds: 900, caConfigMap: 'ca' });
    expect(resolveInjectorSettings({ identity: {} }, 't').identity).toEqual({ audience: 'sidewall-controller', expirationSeconds: 3600 });
    expect(resolveInjectorSettings({ identity: null }, 't').identity).toBeUndefined();
    expect(() => resolveInjectorSettings({ identity: { expirationSeconds: 300 } }, 'injector.yaml')).toThrow(/identity\.expirationSeconds: .*at least 600.*not 300/);
    expect(() => resolveInjectorSettings({ identity: { audience: '', caConfigMap: 7, ttl: 1 } }, 'injector.yaml')).toThrow(
      /identity\.ttl: unknown key[\s\S]*identity\.audience[\s\S]*identity\.caConfigMap/,
    );
    expect(() => resolveInjectorSettings({ identity: 'yes' }, 'injector.yaml')).toThrow(InjectorSettingsError);
  });
});

describe('proxy heap sizing (proxyNodeOptions)', () => {
  const proxyEnv = (s: InjectorSettings): Record<string, string | undefined> => {
    const { pod } = admitPod(podCreateReview(replicaSetPod(), { namespace: 'shop' }), s);
    const proxy = findContainer(pod.spec!.initContainers, 'sidewall-proxy');
    return Object.fromEntries((proxy.env ?? []).map((e) => [e.name, e.value]));
  };

  it('gives sidewall-proxy NODE_OPTIONS only when the settings ask for it', () => {
    expect(proxyEnv(settings)).not.toHaveProperty('NODE_OPTIONS');
    const small = resolveInjectorSettings({ proxyNodeOptions: ' --max-semi-space-size=1   --max-old-space-size=192 ' }, 'injector.yaml');
    expect(small.proxyNodeOptions).toBe('--max-semi-space-size=1 --max-old-space-size=192');
    expect(proxyEnv(small).NODE_OPTIONS).toBe('--max-semi-space-size=1 --max-old-space-size=192');
  });

  it('refuses node flags other than heap sizes (NODE_OPTIONS could load code into the proxy)', () => {
    expect(() => resolveInjectorSettings({ proxyNodeOptions: '--max-semi-space-size=1 --require=/tmp/x.js' }, 'injector.yaml')).toThrow(
      /proxyNodeOptions: "--require=\/tmp\/x\.js" not allowed; only --max-semi-space-size=MiB/,
    );
    expect(() => resolveInjectorSettings({ proxyNodeOptions: 1 }, 'injector.yaml')).toThrow(/proxyNodeOptions: expected a string of node flags/);
  });
});
