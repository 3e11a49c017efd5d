// AdmissionReview requests shaped as the API server sends them to a webhook (admission.k8s.io/v1):
// built-in admission plugins (ServiceAccount, DefaultTolerationSeconds, ...) have already run, so
// pods carry the kube-api-access projected volume and default tolerations; controller-created
// pods have generateName and no name yet.
import { randomUUID } from 'node:crypto';

type Json = Record<string, unknown>;

const serviceAccountVolume = (suffix: string): Json => ({
  name: `kube-api-access-${suffix}`,
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
    ],
  },
});

const serviceAccountMount = (suffix: string): Json => ({
  name: `kube-api-access-${suffix}`,
  readOnly: true,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
});

const defaultTolerations = [
  { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
  { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
];

export function podCreateReview(pod: Json, options: { namespace: string; user?: string; groups?: string[]; name?: string; dryRun?: boolean }): Json {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      ...(options.name !== undefined ? { name: options.name } : {}),
      namespace: options.namespace,
      operation: 'CREATE',
      userInfo: {
        username: options.user ?? 'system:serviceaccount:kube-system:replicaset-controller',
        uid: randomUUID(),
        groups: options.groups ?? ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: options.dryRun ?? false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

export function updateReview(kind: { group: string; version: string; kind: string; resource: string }, oldObject: Json, object: Json, options: { namespace: string; name: string; user: string; groups: string[] }): Json {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: kind.group, version: kind.version, kind: kind.kind },
      resource: { group: kind.group, version: kind.version, resource: kind.resource },
      requestKind: { group: kind.group, version: kind.version, kind: kind.kind },
      requestResource: { group: kind.group, version: kind.version, resource: kind.resource },
      name: options.name,
      namespace: options.namespace,
      operation: 'UPDATE',
      userInfo: { username: options.user, uid: randomUUID(), groups: options.groups },
      object,
      oldObject,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'UpdateOptions', fieldManager: 'kubectl-edit' },
    },
  };
}

export function workloadCreateReview(kind: { group: string; version: string; kind: string; resource: string }, object: Json, options: { namespace: string; name: string; user?: string; groups?: string[] }): Json {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: kind.group, version: kind.version, kind: kind.kind },
      resource: { group: kind.group, version: kind.version, resource: kind.resource },
      name: options.name,
      namespace: options.namespace,
      operation: 'CREATE',
      userInfo: { username: options.user ?? 'alice@example.com', groups: options.groups ?? ['developers', 'system:authenticated'] },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
    },
  };
}

/** A Deployment's pod, created by the ReplicaSet controller: generateName, no name. */
export function replicaSetPod(annotations?: Record<string, string>): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'cart-7d9f8b6c4-',
      namespace: 'shop',
      labels: { app: 'cart', 'pod-template-hash': '7d9f8b6c4' },
      ...(annotations !== undefined ? { annotations } : {}),
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'cart-7d9f8b6c4', uid: '0b4c1a8e-3f9a-4a57-9a57-1d7f9d1f2c11', controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: {
      containers: [
        {
          name: 'cart',
          image: 'ghcr.io/example/cart:1.4.2',
          ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
          livenessProbe: { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' }, periodSeconds: 10, timeoutSeconds: 2, successThreshold: 1, failureThreshold: 3 },
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 5, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
          resources: { requests: { cpu: '100m', memory: '128Mi' } },
          volumeMounts: [serviceAccountMount('x7k2p')],
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
        },
      ],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'cart',
      serviceAccount: 'cart',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: defaultTolerations,
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority',
      volumes: [serviceAccountVolume('x7k2p')],
    },
    status: {},
  };
}

/** A Job's pod: generateName, restartPolicy Never, owner Job. */
export function jobPod(): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'nightly-backup-29012345-',
      namespace: 'ops',
      labels: {
        'batch.kubernetes.io/controller-uid': '5f0c2e1e-7e4b-4d9a-b8a3-2c1a0d9e8f77',
        'batch.kubernetes.io/job-name': 'nightly-backup-29012345',
        'controller-uid': '5f0c2e1e-7e4b-4d9a-b8a3-2c1a0d9e8f77',
        'job-name': 'nightly-backup-29012345',
      },
      annotations: { 'batch.kubernetes.io/job-tracking': '', 'sidewall.io/exclude-outbound-ports': '5432' },
      ownerReferences: [
        { apiVersion: 'batch/v1', kind: 'Job', name: 'nightly-backup-29012345', uid: '5f0c2e1e-7e4b-4d9a-b8a3-2c1a0d9e8f77', controller: true, blockOwnerDeletion: true },
      ],
      finalizers: ['batch.kubernetes.io/job-tracking'],
    },
    spec: {
      containers: [
        {
          name: 'backup',
          image: 'postgres:16',
          command: ['sh', '-c', 'pg_dump -h db.ops > /backup/dump.sql'],
          resources: {},
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'File',
          imagePullPolicy: 'IfNotPresent',
          volumeMounts: [serviceAccountMount('q9w3e')],
        },
      ],
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: 'default',
      serviceAccount: 'default',
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: defaultTolerations,
      priority: 0,
      enableServiceLinks: true,
      volumes: [serviceAccountVolume('q9w3e')],
    },
    status: {},
  };
}

/** A pod created directly with kubectl: a name, no annotations, no volumes at all. */
export function barePod(): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'debug', namespace: 'shop', labels: { run: 'debug' } },
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'debug', image: 'busybox:1.36', args: ['sleep', '3600'], resources: {}, imagePullPolicy: 'IfNotPresent' }],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      tolerations: defaultTolerations,
    },
    status: {},
  };
}

/** A StatefulSet pod with its own init container (named, stable identity). */
export function statefulSetPod(): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'db-0',
      generateName: 'db-',
      namespace: 'shop',
      labels: { app: 'db', 'statefulset.kubernetes.io/pod-name': 'db-0', 'apps.kubernetes.io/pod-index': '0' },
      annotations: { 'sidewall.io/exclude-inbound-ports': '22, 9187', 'sidewall.io/proxy-memory-limit': '512Mi', 'sidewall.io/proxy-cpu-request': '200m' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'db', uid: '7a7e3d0c-5b9d-4b1e-9c6f-0c2e8c3d4b21', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      hostname: 'db-0',
      subdomain: 'db',
      initContainers: [{ name: 'fix-perms', image: 'busybox:1.36', command: ['chown', '-R', '999', '/data'], volumeMounts: [{ name: 'data', mountPath: '/data' }] }],
      containers: [
        {
          name: 'postgres',
          image: 'postgres:16',
          ports: [{ name: 'pg', containerPort: 5432 }],
          startupProbe: { tcpSocket: { port: 'pg' }, failureThreshold: 30, periodSeconds: 2 },
          volumeMounts: [{ name: 'data', mountPath: '/var/lib/postgresql/data' }, serviceAccountMount('m4n5b')],
        },
      ],
      restartPolicy: 'Always',
      volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-db-0' } }, serviceAccountVolume('m4n5b')],
    },
    status: {},
  };
}

/** A DaemonSet pod on the host network (e.g. a node agent). */
export function hostNetworkPod(): Json {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'node-agent-',
      namespace: 'monitoring',
      labels: { app: 'node-agent', 'controller-revision-hash': '6c9b8f7d5', 'pod-template-generation': '1' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'DaemonSet', name: 'node-agent', uid: '1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      hostNetwork: true,
      dnsPolicy: 'ClusterFirstWithHostNet',
      containers: [{ name: 'agent', image: 'example/node-agent:2', ports: [{ containerPort: 9100, hostPort: 9100 }] }],
      restartPolicy: 'Always',
    },
    status: {},
  };
}

export function deployment(annotations: Record<string, string>): Json {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'cart', namespace: 'shop', labels: { app: 'cart' }, generation: 3, resourceVersion: '48213' },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'cart' } },
      template: {
        metadata: { labels: { app: 'cart' }, annotations },
        spec: { containers: [{ name: 'cart', image: 'ghcr.io/example/cart:1.4.2' }] },
      },
    },
  };
}

export function cronJob(annotations: Record<string, string>): Json {
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: { name: 'nightly-backup', namespace: 'ops' },
    spec: {
      schedule: '0 3 * * *',
      jobTemplate: {
        spec: {
          template: {
            metadata: { annotations },
            spec: { restartPolicy: 'OnFailure', containers: [{ name: 'backup', image: 'postgres:16' }] },
          },
        },
      },
    },
  };
}

export const KIND = {
  pod: { group: '', version: 'v1', kind: 'Pod', resource: 'pods' },
  deployment: { group: 'apps', version: 'v1', kind: 'Deployment', resource: 'deployments' },
  cronJob: { group: 'batch', version: 'v1', kind: 'CronJob', resource: 'cronjobs' },
  statefulSet: { group: 'apps', version: 'v1', kind: 'StatefulSet', resource: 'statefulsets' },
};
