// Issue 13 items 2 and 5 at the webhooks: pods that could step around the sidecar are refused
// (or have the door closed by a capability drop), with a message kubectl shows; the security
// team's exemption; the annotation guard on CREATE with its alert record; pods that only look
// injected. Reviews are shaped as the API server sends them; a Pod CREATE goes through the
// mutating webhook first and its patch is applied before validation, as in a cluster.
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkRuleSource } from '../../src/policy/index.js';
import {
  createAlertWriter, defaultInjectorSettings, handleMutation, handleValidation, parseAdmissionReview, resolveInjectorSettings,
  InjectorSettingsError, type AdmissionResponse, type AlertRecord, type Container, type InjectorSettings, type Pod,
} from '../../injector/index.js';
import { capabilityDropPatch, stepAroundFindings } from '../../injector/step-around.js';
import { applyReviewPatch, assertValidPod, findContainer } from './helpers.js';
import { KIND, barePod, podCreateReview, replicaSetPod, statefulSetPod, updateReview, workloadCreateReview } from './fixtures.js';

type Json = Record<string, unknown>;
const defaults = defaultInjectorSettings();
const refuseRoot: InjectorSettings = { ...defaultInjectorSettings(), stepAround: { ...defaults.stepAround, rootContainers: 'refuse' } };
const DEV = { user: 'dev-alice', groups: ['developers', 'system:authenticated'] };
const ADMIN = { user: 'sec-bob', groups: ['sidewall:policy-admins', 'system:authenticated'] };

function collectAlerts(): { sink: ReturnType<typeof createAlertWriter>; records: () => AlertRecord[] } {
  const lines: string[] = [];
  const out = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(chunk.toString()); done(); } });
  return { sink: createAlertWriter(out), records: () => lines.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as AlertRecord) };
}

interface Admission {
  /** The mutating webhook's answer (Pod CREATE only). */
  mutation?: AdmissionResponse;
  /** The validating webhook's answer (absent when the mutating webhook already refused). */
  validation?: AdmissionResponse;
  allowed: boolean;
  message: string;
  pod?: Pod;
  alerts: AlertRecord[];
}

/** Both webhooks in the API server's order. */
function admit(review: Json, settings: InjectorSettings = defaults): Admission {
  const alerts = collectAlerts();
  const request = parseAdmissionReview(JSON.stringify(review));
  let mutation: AdmissionResponse | undefined;
  if (request.operation === 'CREATE' && request.kind.kind === 'Pod') {
    mutation = handleMutation(request, settings, alerts.sink).response;
    if (!mutation.allowed) return { mutation, allowed: false, message: mutation.status?.message ?? '', alerts: alerts.records() };
    request.object = applyReviewPatch(request.object, mutation);
    assertValidPod(request.object as Pod);
  }
  const validation = handleValidation(request, settings, checkRuleSource, alerts.sink).response;
  return {
    ...(mutation !== undefined ? { mutation } : {}),
    validation,
    allowed: validation.allowed,
    message: validation.status?.message ?? '',
    ...(request.kind.kind === 'Pod' ? { pod: request.object as Pod } : {}),
    alerts: alerts.records(),
  };
}

function podWith(change: (spec: { containers: Container[]; initContainers?: Container[]; securityContext?: Json }) => void): Json {
  const pod = replicaSetPod();
  change(pod.spec as never);
  return pod;
}

const createPod = (pod: Json, namespace = 'shop', who = { user: 'system:serviceaccount:kube-system:replicaset-controller', groups: ['system:serviceaccounts'] }): Json =>
  podCreateReview(pod, { namespace, user: who.user, groups: who.groups });

/** A workload of `kind` whose pod template has one container with this securityContext. */
function workload(kind: string, containerContext: Json, podContext: Json = {}, annotations: Record<string, string> = {}): Json {
  const template = { metadata: { labels: { app: 'cart' }, annotations }, spec: { securityContext: podContext, containers: [{ name: 'cart', image: 'ghcr.io/example/cart:1.4.2', securityContext: containerContext }] } };
  const base = { apiVersion: kind === 'Job' || kind === 'CronJob' ? 'batch/v1' : kind === 'ReplicationController' ? 'v1' : 'apps/v1', kind, metadata: { name: 'cart', namespace: 'shop' } };
  if (kind === 'CronJob') return { ...base, spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { ...template, spec: { ...template.spec, restartPolicy: 'OnFailure' } } } } } };
  if (kind === 'Job') return { ...base, spec: { template: { ...template, spec: { ...template.spec, restartPolicy: 'Never' } } } };
  return { ...base, spec: { selector: { matchLabels: { app: 'cart' } }, template } };
}

const KINDS: Record<string, { group: string; version: string; kind: string; resource: string }> = {
  Deployment: KIND.deployment,
  StatefulSet: KIND.statefulSet,
  DaemonSet: { group: 'apps', version: 'v1', kind: 'DaemonSet', resource: 'daemonsets' },
  ReplicaSet: { group: 'apps', version: 'v1', kind: 'ReplicaSet', resource: 'replicasets' },
  Job: { group: 'batch', version: 'v1', kind: 'Job', resource: 'jobs' },
  CronJob: KIND.cronJob,
  ReplicationController: { group: '', version: 'v1', kind: 'ReplicationController', resource: 'replicationcontrollers' },
};

describe('refused: containers that could pass as the proxy or undo the firewall', () => {
  const cases: Array<[string, Json, RegExp]> = [
    ['runAsUser 1337', podWith((s) => { s.containers[0]!.securityContext = { runAsUser: 1337 }; }), /container cart: spec\.containers\[0\]\.securityContext\.runAsUser: uid 1337 is the sidecar's own user; fix: use another uid/],
    ['runAsGroup 1337', podWith((s) => { s.containers[0]!.securityContext = { runAsUser: 1000, runAsGroup: 1337 }; }), /container cart: spec\.containers\[0\]\.securityContext\.runAsGroup: gid 1337/],
    ['pod runAsUser 1337', podWith((s) => { s.securityContext = { runAsUser: 1337 }; }), /the pod: spec\.securityContext\.runAsUser: every container without its own runAsUser runs as uid 1337/],
    ['pod runAsGroup 1337', podWith((s) => { s.securityContext = { runAsGroup: 1337 }; }), /the pod: spec\.securityContext\.runAsGroup/],
    ['fsGroup 1337', podWith((s) => { s.securityContext = { fsGroup: 1337 }; }), /the pod: spec\.securityContext\.fsGroup: every container gets gid 1337/],
    ['supplementalGroups with 1337', podWith((s) => { s.securityContext = { supplementalGroups: [4000, 1337] }; }), /spec\.securityContext\.supplementalGroups: .*fix: remove 1337/],
    ['add NET_ADMIN', podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } }; }), /spec\.containers\[0\]\.securityContext\.capabilities\.add\[0\]: NET_ADMIN: it can rewrite the pod's iptables.*fix: remove NET_ADMIN/],
    ['add cap_net_raw (runtime spelling)', podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['CHOWN', 'cap_net_raw'] } }; }), /capabilities\.add\[1\]: cap_net_raw: raw sockets/],
    ['add ALL', podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['ALL'] } }; }), /capabilities\.add\[0\]: ALL/],
    ['add SYS_PTRACE', podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['SYS_PTRACE'] } }; }), /SYS_PTRACE: it can take over the sidecar/],
    ['add SETGID', podWith((s) => { s.containers[0]!.securityContext = { capabilities: { drop: ['ALL'], add: ['SETGID'] } }; }), /SETGID: it can switch to the proxy's gid/],
    ['privileged', podWith((s) => { s.containers[0]!.securityContext = { privileged: true }; }), /spec\.containers\[0\]\.securityContext\.privileged: a privileged container holds every capability/],
    ['hostNetwork', podWith((s) => { (s as Json).hostNetwork = true; }), /the pod: spec\.hostNetwork: the pod uses the node's network namespace, where the sidecar cannot police its traffic.*fix: remove hostNetwork: true/],
    ['hostPID', podWith((s) => { (s as Json).hostPID = true; }), /the pod: spec\.hostPID: the pod sees the node's processes/],
    ['a hostPath volume', podWith((s) => { ((s as Json).volumes as Json[]).push({ name: 'node-root', hostPath: { path: '/', type: 'Directory' } }); }), /volume node-root: spec\.volumes\[1\]\.hostPath: it mounts the node's \/: a root process can change the node itself/],
    ['an init container as 1337', podWith((s) => { s.initContainers = [{ name: 'migrate', image: 'migrate:1', securityContext: { runAsUser: 1337 } }]; }), /init container migrate: spec\.initContainers\[0\]\.securityContext\.runAsUser/],
  ];
  for (const [name, pod, expected] of cases) {
    it(`a Pod with ${name}: the mutating webhook refuses it and says which container, which field, why and how to fix it`, () => {
      const result = admit(createPod(pod));
      expect(result.allowed).toBe(false);
      expect(result.mutation?.status?.code).toBe(403);
      expect(result.message).toMatch(/^sidewall denied Pod shop\/cart-7d9f8b6c4-/);
      expect(result.message).toMatch(expected);
      expect(result.message).toContain('only they can exempt a namespace (chart value stepAround.exemptNamespaces)');
    });
  }

  it('each refusal is also an alert record for the security team (who, where, each finding)', () => {
    const pod = podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } }; });
    const byPod = admit(createPod(pod, 'shop', DEV));
    expect(byPod.alerts).toHaveLength(1);
    expect(byPod.alerts[0]).toMatchObject({
      type: 'alert', seq: 1, verdict: 'denied', alert: { kind: 'step-around', source: 'sidewall-webhook' }, operation: 'CREATE', user: 'dev-alice',
      namespace: 'shop', object: { kind: 'Pod', namespace: 'shop', name: 'cart-7d9f8b6c4-' }, pod: { namespace: 'shop', name: 'cart-7d9f8b6c4-' },
    });
    expect(byPod.alerts[0]!.findings).toEqual([expect.stringMatching(/^container cart: spec\.containers\[0\]\.securityContext\.capabilities\.add\[0\]: NET_ADMIN/)]);
    const byTemplate = admit(workloadCreateReview(KIND.deployment, workload('Deployment', { privileged: true }), { namespace: 'shop', name: 'cart', ...DEV }));
    expect(byTemplate.alerts.map((a) => [a.alert.kind, a.object.kind, a.findings?.length])).toEqual([['step-around', 'Deployment', 1]]);
    expect(admit(createPod(replicaSetPod())).alerts).toEqual([]);
  });

  it('the validating webhook refuses the same pod on its own (a cluster where the pod reached it unmutated)', () => {
    const review = createPod(podWith((s) => { s.containers[0]!.securityContext = { runAsUser: 1337 }; }));
    const response = handleValidation(parseAdmissionReview(JSON.stringify(review)), defaults, checkRuleSource, () => undefined).response;
    expect(response.allowed).toBe(false);
    expect(response.status!.message).toContain('spec.containers[0].securityContext.runAsUser: uid 1337');
  });

  for (const kind of Object.keys(KINDS)) {
    it(`a ${kind} whose pod template runs as 1337 or adds NET_RAW is refused, naming the template field`, () => {
      const result = admit(workloadCreateReview(KINDS[kind]!, workload(kind, { runAsUser: 1337, capabilities: { add: ['NET_RAW'] } }), { namespace: 'shop', name: 'cart', ...DEV }));
      expect(result.allowed).toBe(false);
      const path = kind === 'CronJob' ? 'spec.jobTemplate.spec.template.spec' : 'spec.template.spec';
      expect(result.message).toContain(`the pod template of ${kind} shop/cart`);
      expect(result.message).toContain(`container cart: ${path}.containers[0].securityContext.runAsUser: uid 1337`);
      expect(result.message).toContain(`${path}.containers[0].securityContext.capabilities.add[0]: NET_RAW`);
    });
  }

  it('a harmless workload is admitted', () => {
    for (const kind of Object.keys(KINDS)) {
      const result = admit(workloadCreateReview(KINDS[kind]!, workload(kind, { runAsUser: 1000, capabilities: { add: ['NET_BIND_SERVICE'] } }), { namespace: 'shop', name: 'cart', ...DEV }));
      expect(result.message, kind).toBe('');
      expect(result.allowed).toBe(true);
    }
  });
});

describe('root containers keeping CAP_SETUID/CAP_SETGID', () => {
  it('default (rootContainers: drop): the injector drops SETUID, SETGID and NET_RAW from a root-capable container, and the pod still validates', () => {
    const result = admit(createPod(replicaSetPod()));
    expect(result.allowed).toBe(true);
    const app = findContainer(result.pod!.spec!.containers, 'cart');
    expect(app.securityContext).toEqual({ capabilities: { drop: ['SETUID', 'SETGID', 'NET_RAW'] } });
    // The injected containers are not touched.
    expect(findContainer(result.pod!.spec!.initContainers, 'sidewall-init').securityContext!.capabilities).toEqual({ add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] });
  });

  it('appends to an existing drop list, creates the ones missing, and covers app init containers', () => {
    const pod = podWith((s) => {
      s.containers[0]!.securityContext = { runAsUser: 0, capabilities: { drop: ['MKNOD', 'setuid'] } };
      s.containers.push({ name: 'side', image: 'side:1', securityContext: { runAsUser: 1000, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {} } });
      s.initContainers = [{ name: 'migrate', image: 'migrate:1', securityContext: { readOnlyRootFilesystem: true } }];
    });
    const result = admit(createPod(pod));
    expect(result.allowed).toBe(true);
    const spec = result.pod!.spec!;
    expect(findContainer(spec.containers, 'cart').securityContext!.capabilities!.drop).toEqual(['MKNOD', 'setuid', 'SETGID', 'NET_RAW']);
    // Non-root without privilege escalation: only NET_RAW.
    expect(findContainer(spec.containers, 'side').securityContext!.capabilities).toEqual({ drop: ['NET_RAW'] });
    expect(findContainer(spec.initContainers, 'migrate').securityContext).toEqual({ readOnlyRootFilesystem: true, capabilities: { drop: ['SETUID', 'SETGID', 'NET_RAW'] } });
    expect(spec.initContainers!.map((c) => c.name)).toEqual(['sidewall-init', 'sidewall-proxy', 'migrate']);
  });

  it('a non-root container that allows privilege escalation counts as root-capable (a setuid-root program in its image)', () => {
    const result = admit(createPod(podWith((s) => { s.containers[0]!.securityContext = { runAsUser: 1000 }; })));
    expect(findContainer(result.pod!.spec!.containers, 'cart').securityContext!.capabilities!.drop).toEqual(['SETUID', 'SETGID', 'NET_RAW']);
  });

  it('adds no capabilities to a pod for Windows nodes (the API server refuses them there)', () => {
    const pod = replicaSetPod();
    (pod.spec as Json).os = { name: 'windows' };
    const result = handleMutation(parseAdmissionReview(JSON.stringify(createPod(pod))), defaults);
    const patched = applyReviewPatch(pod, result.response);
    expect(findContainer(patched.spec!.containers, 'cart').securityContext).toBeUndefined();
  });

  it('dropNetRaw: false keeps NET_RAW (for clusters whose apps need ping as root)', () => {
    const settings: InjectorSettings = { ...defaults, stepAround: { ...defaults.stepAround, dropNetRaw: false } };
    const result = admit(createPod(replicaSetPod()), settings);
    expect(findContainer(result.pod!.spec!.containers, 'cart').securityContext!.capabilities!.drop).toEqual(['SETUID', 'SETGID']);
  });

  it('rootContainers: refuse: a container with no runAsUser and no runAsNonRoot is refused with the fix', () => {
    const result = admit(createPod(replicaSetPod()), refuseRoot);
    expect(result.allowed).toBe(false);
    expect(result.message).toContain(
      "container cart: spec.containers[0].securityContext.capabilities.drop: no runAsUser and no runAsNonRoot, so the image's USER decides and may be root, and it keeps CAP_SETUID and CAP_SETGID (in the runtime's default set), so it could call setuid(1337) or setgid(1337) and pass as the sidecar; fix: add capabilities.drop: [SETUID, SETGID] (or ALL), or run it as a non-root user with runAsNonRoot: true and allowPrivilegeEscalation: false",
    );
  });

  it('rootContainers: refuse: admits a root container that drops SETUID and SETGID, and a non-root one without escalation', () => {
    for (const context of [{ runAsUser: 0, capabilities: { drop: ['SETUID', 'SETGID'] } }, { runAsNonRoot: true, allowPrivilegeEscalation: false }, { capabilities: { drop: ['ALL'] } }]) {
      const result = admit(createPod(podWith((s) => { s.containers[0]!.securityContext = context; })), refuseRoot);
      expect(result.message, JSON.stringify(context)).toBe('');
    }
  });

  it('rootContainers: refuse: a Deployment template with a root container is refused; with drop (the default) it is admitted, its pods get the drop', () => {
    const review = workloadCreateReview(KIND.deployment, workload('Deployment', { runAsUser: 0 }), { namespace: 'shop', name: 'cart', ...DEV });
    expect(admit(review, refuseRoot).message).toContain('container cart: spec.template.spec.containers[0].securityContext.capabilities.drop: it runs as uid 0');
    expect(admit(review).allowed).toBe(true);
  });
});

describe("the security team's exemption", () => {
  const exempt: InjectorSettings = { ...defaults, stepAround: { ...defaults.stepAround, exemptNamespaces: ['netops'] } };
  const netAdminPod = (namespace: string): Json => {
    const pod = podWith((s) => { s.containers[0]!.securityContext = { capabilities: { add: ['NET_ADMIN'] } }; });
    (pod.metadata as Json).namespace = namespace;
    return pod;
  };

  it('admits the pod in a namespace listed in stepAround.exemptNamespaces, without drops, and only there', () => {
    const result = admit(createPod(netAdminPod('netops'), 'netops'), exempt);
    expect(result.allowed).toBe(true);
    expect(findContainer(result.pod!.spec!.containers, 'cart').securityContext).toEqual({ capabilities: { add: ['NET_ADMIN'] } });
    expect(admit(createPod(netAdminPod('shop'), 'shop'), exempt).allowed).toBe(false);
    expect(admit(workloadCreateReview(KIND.deployment, workload('Deployment', { privileged: true }), { namespace: 'netops', name: 'cart', ...DEV }), exempt).allowed).toBe(true);
  });

  it('stepAround.enabled: false (clusters that police this another way) turns off the refusals and the drops, not the annotation guard', () => {
    const off: InjectorSettings = { ...defaults, stepAround: { ...defaults.stepAround, enabled: false } };
    const result = admit(createPod(netAdminPod('shop'), 'shop'), off);
    expect(result.allowed).toBe(true);
    expect(findContainer(result.pod!.spec!.containers, 'cart').securityContext).toEqual({ capabilities: { add: ['NET_ADMIN'] } });
    const guarded = netAdminPod('shop');
    (guarded.metadata as Json).annotations = { 'sidewall.io/mode': 'monitor' };
    expect(admit(createPod(guarded, 'shop', DEV), off).message).toContain('dev-alice may not set sidewall.io/mode');
  });

  it('nothing on the pod grants it: an app team cannot exempt itself', () => {
    const pod = netAdminPod('shop');
    (pod.metadata as Json).annotations = { 'sidewall.io/exempt': 'true', 'sidewall.io/step-around': 'allow' };
    (pod.metadata as Json).labels = { app: 'cart', 'sidewall.io/exempt': 'true' };
    expect(admit(createPod(pod), exempt).allowed).toBe(false);
  });

  it('is read from the settings file and validated, naming the key and the fix', () => {
    const settings = resolveInjectorSettings({ stepAround: { exemptNamespaces: ['netops'], rootContainers: 'refuse' } }, 'injector.yaml');
    expect(settings.stepAround).toEqual({ enabled: true, rootContainers: 'refuse', dropNetRaw: true, exemptNamespaces: ['netops'] });
    try {
      resolveInjectorSettings({ stepAround: { exemptNamespaces: ['Net_Ops'], rootContainers: 'ignore', allowNetAdmin: true } }, 'injector.yaml');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(InjectorSettingsError);
      const problems = (err as InjectorSettingsError).problems;
      expect(problems).toContain("stepAround.exemptNamespaces[0]: 'Net_Ops' is not a namespace name (lower-case letters, digits and '-', at most 63)");
      expect(problems).toContain("stepAround.rootContainers: must be drop (add capabilities.drop [SETUID, SETGID]) or refuse (deny the pod), not 'ignore'");
      expect(problems.some((p) => p.startsWith('stepAround.allowNetAdmin: unknown key'))).toBe(true);
    }
  });
});

describe('updates: only what the update adds is refused', () => {
  it('an ephemeral container (kubectl debug) that runs as root with default capabilities is refused; a restricted one is admitted', () => {
    const injected = admit(createPod(replicaSetPod())).pod!;
    (injected.metadata as Json).name = 'cart-7d9f8b6c4-abcde';
    const withDebug = (context: Json | undefined): Json => {
      const pod = structuredClone(injected) as Json;
      (pod.spec as Json).ephemeralContainers = [{ name: 'debugger-x7', image: 'busybox:1.36', stdin: true, tty: true, targetContainerName: 'cart', ...(context ? { securityContext: context } : {}) }];
      return pod;
    };
    const review = (pod: Json): Json => {
      const r = updateReview(KIND.pod, injected as Json, pod, { namespace: 'shop', name: 'cart-7d9f8b6c4-abcde', ...DEV });
      (r.request as Json).subResource = 'ephemeralcontainers';
      return r;
    };
    const refused = admit(review(withDebug(undefined)));
    expect(refused.allowed).toBe(false);
    expect(refused.message).toContain('ephemeral container debugger-x7: spec.ephemeralContainers[0].securityContext.capabilities.drop');
    const profiled = admit(review(withDebug({ runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } })));
    expect(profiled.message).toBe('');
    const sysadmin = admit(review(withDebug({ privileged: true })));
    expect(sysadmin.message).toContain('spec.ephemeralContainers[0].securityContext.privileged');
  });

  it('a Deployment admitted before (runs as 1337) can still be scaled; adding NET_ADMIN to it is refused for that alone', () => {
    const before = workload('Deployment', { runAsUser: 1337 });
    const scaled = structuredClone(before);
    (scaled.spec as Json).replicas = 5;
    expect(admit(updateReview(KIND.deployment, before, scaled, { namespace: 'shop', name: 'cart', ...DEV })).allowed).toBe(true);
    const worse = workload('Deployment', { runAsUser: 1337, capabilities: { add: ['NET_ADMIN'] } });
    const result = admit(updateReview(KIND.deployment, before, worse, { namespace: 'shop', name: 'cart', ...DEV }));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('(1 problem)');
    expect(result.message).toContain('capabilities.add[0]: NET_ADMIN');
  });

  it("changing sidewall-proxy's image on a running pod is refused", () => {
    const injected = admit(createPod(replicaSetPod())).pod! as Json;
    const swapped = structuredClone(injected);
    findContainer((swapped.spec as Pod['spec'])!.initContainers, 'sidewall-proxy').image = 'evil.example/not-a-firewall:1';
    const result = admit(updateReview(KIND.pod, injected, swapped, { namespace: 'shop', name: 'cart-7d9f8b6c4-abcde', ...DEV }));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('sidewall-proxy runs image evil.example/not-a-firewall:1, not localhost/sidewall');
  });
});

describe('pods that only look injected', () => {
  it('a pod created with sidewall.io/status: injected is left alone by the injector and refused by the validator', () => {
    const pod = barePod();
    (pod.metadata as Json).annotations = { 'sidewall.io/status': 'injected' };
    const result = admit(createPod(pod, 'shop', DEV));
    expect(result.mutation?.auditAnnotations).toEqual({ injection: 'skipped: already injected (sidewall.io/status: injected)' });
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('spec: the pod carries the annotation sidewall.io/status but was not injected by sidewall (sidewall-init is missing; sidewall-proxy is missing; volume sidewall-config is missing');
  });

  it('a pod that brings its own "sidewall-proxy" (other flags, extra env) is refused', () => {
    const genuine = admit(createPod(barePod())).pod! as Json;
    const fake = structuredClone(genuine);
    delete ((fake.metadata as Json).annotations as Json)['sidewall.io/status'];
    const proxy = findContainer((fake.spec as Pod['spec'])!.initContainers, 'sidewall-proxy');
    proxy.env = [...(proxy.env ?? []), { name: 'NODE_OPTIONS', value: '--require /tmp/x.js' }];
    const init = findContainer((fake.spec as Pod['spec'])!.initContainers, 'sidewall-init');
    init.args = [...init.args!, '--exclude-outbound-cidrs', '0.0.0.0/0'];
    const result = admit(createPod(fake, 'shop', DEV));
    expect(result.mutation?.auditAnnotations?.injection).toMatch(/^skipped: /);
    expect(result.allowed).toBe(false);
    expect(result.message).toContain("sidewall-init's command is not the one the injector writes");
    expect(result.message).toContain("sidewall-proxy's NODE_OPTIONS is not the injector's");
    expect(result.message).toContain('annotation sidewall.io/status is not "injected"');
  });

  it('a pod that names its own namespace or service account to its sidecar (literal env) is refused', () => {
    // appliesTo selects cluster rules by the pod's namespace and service account: a literal value
    // would let the pod pick which rules its sidecar applies.
    const genuine = admit(createPod(barePod())).pod! as Json;
    const proxyOf = (pod: Json) => findContainer((pod.spec as Pod['spec'])!.initContainers, 'sidewall-proxy');
    expect(proxyOf(genuine).env).toContainEqual({ name: 'POD_SERVICE_ACCOUNT', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'spec.serviceAccountName' } } });
    const fake = structuredClone(genuine);
    const proxy = proxyOf(fake);
    proxy.env = (proxy.env ?? []).map((v) => (v.name === 'POD_NAMESPACE' ? { name: 'POD_NAMESPACE', value: 'kube-system' } : v.name === 'POD_SERVICE_ACCOUNT' ? { name: 'POD_SERVICE_ACCOUNT', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } } : v));
    const result = admit(createPod(fake, 'shop', DEV));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain("sidewall-proxy's POD_NAMESPACE is not the downward API's metadata.namespace");
    expect(result.message).toContain("sidewall-proxy's POD_SERVICE_ACCOUNT is not the downward API's spec.serviceAccountName");
  });

  it('a pod already injected by the webhook (re-applied from `kubectl get -o yaml`) is admitted unchanged', () => {
    const genuine = admit(createPod(statefulLike())).pod! as Json;
    const again = admit(createPod(genuine));
    expect(again.mutation?.patch).toBeUndefined();
    expect(again.message).toBe('');
    expect(again.allowed).toBe(true);
  });

  it('a pod that reaches the validator without the injection (mutating webhook configuration removed) is refused; an opted-out one is not', () => {
    const validateOnly = (pod: Json, who = DEV) => handleValidation(parseAdmissionReview(JSON.stringify(createPod(pod, 'shop', who))), defaults, checkRuleSource, () => undefined).response;
    const plain = validateOnly(barePod());
    expect(plain.allowed).toBe(false);
    expect(plain.status!.message).toContain('spec: the pod was not injected with the sidewall firewall (the sidewall mutating webhook did not see it)');
    const optedOut = barePod();
    (optedOut.metadata as Json).annotations = { 'sidewall.io/inject': 'false' };
    expect(validateOnly(optedOut, ADMIN).allowed).toBe(true);
  });

  it('what the injector writes passes the check in every shape: legacy sidecar, no identity controller, heap flags, no launcher, a StatefulSet pod with its own init container', () => {
    const { identity: _identity, ...withoutIdentity } = defaultInjectorSettings();
    const shapes: Array<[string, InjectorSettings]> = [
      ['legacy', { ...defaultInjectorSettings(), nativeSidecar: false }],
      ['no identity', withoutIdentity],
      ['identity without CA', { ...defaultInjectorSettings(), identity: { audience: 'sidewall-controller', expirationSeconds: 3600 } }],
      ['identity with CA', { ...defaultInjectorSettings(), identity: { audience: 'sidewall-controller', expirationSeconds: 3600, caConfigMap: 'sidewall-controller-ca' } }],
      ['heap flags', { ...defaultInjectorSettings(), proxyNodeOptions: '--max-semi-space-size=1' }],
      ['no launcher', { ...defaultInjectorSettings(), proxyLauncher: [] }],
    ];
    for (const [name, settings] of shapes) {
      for (const pod of [replicaSetPod({ 'sidewall.io/exclude-outbound-cidrs': '169.254.169.254/32' }), barePod(), statefulSetPod()]) {
        const result = admit(createPod(pod), settings);
        expect(result.message, name).toBe('');
        expect(result.mutation?.patch, name).toBeDefined();
      }
    }
  });

  it('a pod template with a container named sidewall-proxy is refused (its pods would not be injected)', () => {
    const dep = workload('Deployment', { runAsUser: 1000 });
    ((dep.spec as Json).template as { spec: { containers: Json[] } }).spec.containers.push({ name: 'sidewall-proxy', image: 'busybox' });
    const result = admit(workloadCreateReview(KIND.deployment, dep, { namespace: 'shop', name: 'cart', ...DEV }));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('spec.template.spec: a container named sidewall-proxy: names the sidewall injector reserves');
  });
});

function statefulLike(): Json {
  const pod = replicaSetPod({ 'sidewall.io/exclude-inbound-ports': '22' });
  return pod;
}

describe('the annotation guard on CREATE (issue 13 item 5)', () => {
  it('a developer creating a Pod with sidewall.io/mode: monitor is refused and an alert record is written', () => {
    const pod = barePod();
    (pod.metadata as Json).annotations = { 'sidewall.io/mode': 'monitor' };
    const result = admit(createPod(pod, 'shop', DEV));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('dev-alice may not set sidewall.io/mode on Pod shop/debug');
    expect(result.alerts).toHaveLength(1);
    expect(result.alerts[0]).toMatchObject({
      type: 'alert', verdict: 'denied', operation: 'CREATE', user: 'dev-alice', namespace: 'shop',
      object: { kind: 'Pod', namespace: 'shop', name: 'debug' }, pod: { namespace: 'shop', name: 'debug' },
      changes: [{ annotation: 'sidewall.io/mode', change: 'added', after: 'monitor' }],
    });
  });

  it('a developer creating a Deployment with exclude-outbound-cidrs 0.0.0.0/0 is refused, with an alert', () => {
    const result = admit(workloadCreateReview(KIND.deployment, workload('Deployment', { runAsUser: 1000 }, {}, { 'sidewall.io/exclude-outbound-cidrs': '0.0.0.0/0' }), { namespace: 'shop', name: 'cart', ...DEV }));
    expect(result.allowed).toBe(false);
    expect(result.message).toContain('dev-alice may not set sidewall.io/exclude-outbound-cidrs on the pod template of Deployment shop/cart');
    expect(result.alerts[0]).toMatchObject({ operation: 'CREATE', object: { kind: 'Deployment', namespace: 'shop', name: 'cart' }, changes: [{ annotation: 'sidewall.io/exclude-outbound-cidrs', change: 'added', after: '0.0.0.0/0' }] });
    expect(result.alerts[0]!.pod).toBeUndefined();
  });

  it('a CronJob with rules, and a Pod labelled sidewall.io/inject=false (which the mutating webhook never sees), are refused for a developer', () => {
    const cron = admit(workloadCreateReview(KIND.cronJob, workload('CronJob', { runAsUser: 1000 }, {}, { 'sidewall.io/rules': '- {id: all, action: allow}' }), { namespace: 'shop', name: 'cart', ...DEV }));
    expect(cron.allowed).toBe(false);
    expect(cron.alerts[0]!.changes![0]).toMatchObject({ annotation: 'sidewall.io/rules', change: 'added' });
    const pod = barePod();
    (pod.metadata as Json).labels = { run: 'debug', 'sidewall.io/inject': 'false' };
    // The objectSelector keeps the pod from the mutating webhook: only the validator sees it.
    const response = handleValidation(parseAdmissionReview(JSON.stringify(createPod(pod, 'shop', DEV))), defaults, checkRuleSource, collectAlerts().sink).response;
    expect(response.allowed).toBe(false);
    expect(response.status!.message).toContain('dev-alice may not set label sidewall.io/inject on Pod shop/debug');
  });

  it('admits the same CREATEs from the security team, and from the controllers that copy a checked template', () => {
    const pod = replicaSetPod({ 'sidewall.io/mode': 'monitor', 'sidewall.io/exclude-outbound-cidrs': '169.254.169.254/32' });
    expect(admit(createPod(pod, 'shop', ADMIN)).allowed).toBe(true);
    const byController = admit(createPod(pod));
    expect(byController.allowed).toBe(true);
    expect(byController.alerts).toEqual([]);
    expect(admit(workloadCreateReview(KIND.deployment, workload('Deployment', { runAsUser: 1000 }, {}, { 'sidewall.io/mode': 'monitor' }), { namespace: 'shop', name: 'cart', ...ADMIN })).allowed).toBe(true);
  });

  it('sidewall.io/inject: "true" opts nothing out and is allowed to anyone', () => {
    const pod = barePod();
    (pod.metadata as Json).annotations = { 'sidewall.io/inject': 'true' };
    expect(admit(createPod(pod, 'shop', DEV)).allowed).toBe(true);
  });
});

describe('malformed objects', () => {
  it('the step-around checks and the validating webhook answer any pod spec shape without throwing (fuzzed)', () => {
    const value = fc.oneof(fc.constant(undefined), fc.constant(null), fc.integer({ min: -1, max: 2000 }), fc.constantFrom(0, 1337, 'NET_ADMIN', 'cap_setuid', 'ALL'), fc.boolean(), fc.array(fc.constantFrom('NET_RAW', 'SETUID', 7, null)));
    const context = fc.oneof(value, fc.record({ runAsUser: value, runAsGroup: value, runAsNonRoot: value, privileged: value, allowPrivilegeEscalation: value, capabilities: fc.oneof(value, fc.record({ add: value, drop: value })) }, { requiredKeys: [] }));
    const container = fc.oneof(value, fc.record({ name: fc.constantFrom('app', 'sidewall-proxy', 'sidewall-init'), securityContext: context }, { requiredKeys: ['name'] }));
    const spec = fc.record({
      containers: fc.oneof(value, fc.array(container, { maxLength: 3 })),
      initContainers: fc.oneof(value, fc.array(container, { maxLength: 2 })),
      ephemeralContainers: fc.oneof(value, fc.array(container, { maxLength: 2 })),
      securityContext: fc.oneof(value, fc.record({ runAsUser: value, fsGroup: value, supplementalGroups: value }, { requiredKeys: [] })),
      volumes: fc.oneof(value, fc.array(fc.record({ name: fc.constantFrom('sidewall-config', 'data') }), { maxLength: 2 })),
    }, { requiredKeys: [] });
    fc.assert(fc.property(spec, (podSpec) => {
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: podSpec };
      const request = parseAdmissionReview(JSON.stringify(createPod(pod, 'shop', DEV)));
      // The mutation's own code trusts the API server's schema; what it adds must not throw.
      for (const rootContainers of [true, false]) expect(Array.isArray(stepAroundFindings(podSpec as never, { proxyUid: 1337, proxyGid: 1337, specPath: 'spec', rootContainers }))).toBe(true);
      expect(Array.isArray(capabilityDropPatch(podSpec as never, { dropRoot: true, dropNetRaw: true }))).toBe(true);
      const validation = handleValidation(request, defaults, checkRuleSource, () => undefined);
      expect(typeof validation.response.allowed).toBe('boolean');
    }), { numRuns: 300 });
  });
});
