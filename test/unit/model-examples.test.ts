// Examples as they appear in the Istio and Gateway API documentation load unchanged, with no problems.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatProblem,
  parseManifests,
  type AuthorizationPolicy,
  type DestinationRule,
  type Gateway,
  type HTTPRoute,
  type MeshObject,
  type PeerAuthentication,
  type ParseResult,
} from '../../src/common/model/index.js';

function loadOne(yaml: string): MeshObject {
  const r: ParseResult = parseManifests(yaml, 'example.yaml');
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.equal(r.objects.length, 1);
  return r.objects[0]!.object;
}

test('loads the deny-by-namespace AuthorizationPolicy from the Istio docs', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
spec:
  selector:
    matchLabels:
      app: httpbin
      version: v1
  action: DENY
  rules:
  - from:
    - source:
        notNamespaces: ["foo"]
`) as AuthorizationPolicy;
  assert.deepEqual(o, {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'httpbin', namespace: 'foo', labels: {}, annotations: {} },
    spec: {
      selector: { matchLabels: { app: 'httpbin', version: 'v1' } },
      action: 'DENY',
      rules: [{ from: [{ source: { notNamespaces: ['foo'] } }] }],
    },
  });
});

test('loads an allow-by-principal AuthorizationPolicy with operations and conditions', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: foo
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["test"]
    to:
    - operation:
        methods: ["GET"]
        paths: ["/info*"]
    - operation:
        methods: ["POST"]
        paths: ["/data"]
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
`) as AuthorizationPolicy;
  assert.equal(o.spec.action, 'ALLOW');
  assert.deepEqual(o.spec.rules[0]?.from, [
    { source: { principals: ['cluster.local/ns/default/sa/sleep'] } },
    { source: { namespaces: ['test'] } },
  ]);
  assert.deepEqual(o.spec.rules[0]?.when, [{ key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'] }]);
});

test('loads an allow-nothing policy (empty spec) with ALLOW and no rules', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: allow-nothing
  namespace: foo
spec: {}
`) as AuthorizationPolicy;
  assert.deepEqual(o.spec, { action: 'ALLOW', rules: [] });
});

test('loads a waypoint-targeted policy with targetRefs to the waypoint Gateway', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: productpage-viewer
  namespace: default
spec:
  targetRefs:
  - kind: Service
    group: ""
    name: productpage
  action: ALLOW
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/default/sa/sleep
    to:
    - operation:
        methods: ["GET"]
`) as AuthorizationPolicy;
  assert.deepEqual(o.spec.targetRefs, [{ kind: 'Service', group: '', name: 'productpage' }]);
});

test('loads the mesh-wide STRICT PeerAuthentication in istio-system', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: "default"
  namespace: "istio-system"
spec:
  mtls:
    mode: STRICT
`) as PeerAuthentication;
  assert.equal(o.metadata.namespace, 'istio-system');
  assert.deepEqual(o.spec, { mtls: { mode: 'STRICT' } });
});

test('loads a workload PeerAuthentication with port-level mTLS', () => {
  const o = loadOne(`
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata:
  name: finance
  namespace: foo
spec:
  selector:
    matchLabels:
      app: finance
  mtls:
    mode: STRICT
  portLevelMtls:
    8080:
      mode: DISABLE
`) as PeerAuthentication;
  assert.deepEqual(o.spec.portLevelMtls, { '8080': { mode: 'DISABLE' } });
});

test('loads the waypoint Gateway that istioctl waypoint generate prints', () => {
  const o = loadOne(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  labels:
    istio.io/waypoint-for: service
  name: waypoint
  namespace: default
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
`) as Gateway;
  assert.deepEqual(o.spec, { gatewayClassName: 'istio-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] });
  assert.deepEqual(o.metadata.labels, { 'istio.io/waypoint-for': 'service' });
});

test('loads a mesh HTTPRoute with a Service parent and weighted backends', () => {
  const o = loadOne(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 90
    - name: reviews-v2
      port: 9080
      weight: 10
`) as HTTPRoute;
  assert.equal(o.metadata.namespace, 'default');
  assert.deepEqual(o.spec, {
    parentRefs: [{ group: '', kind: 'Service', name: 'reviews', port: 9080 }],
    rules: [
      {
        matches: [{ path: { type: 'PathPrefix', value: '/' } }],
        backendRefs: [
          { name: 'reviews-v1', port: 9080, weight: 90 },
          { name: 'reviews-v2', port: 9080, weight: 10 },
        ],
      },
    ],
  });
});

test('loads an HTTPRoute with header matches and a header modifier filter', () => {
  const o = loadOne(`
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reviews
  namespace: bookinfo
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: reviews
    port: 9080
  rules:
  - matches:
    - headers:
      - name: end-user
        value: jason
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        add:
        - name: x-canary
          value: "true"
    backendRefs:
    - name: reviews-v2
      port: 9080
  - backendRefs:
    - name: reviews-v1
      port: 9080
`) as HTTPRoute;
  assert.deepEqual(o.spec.rules[0]?.matches, [{ path: { type: 'PathPrefix', value: '/' }, headers: [{ type: 'Exact', name: 'end-user', value: 'jason' }] }]);
  assert.deepEqual(o.spec.rules[0]?.filters, [{ type: 'RequestHeaderModifier', requestHeaderModifier: { add: [{ name: 'x-canary', value: 'true' }] } }]);
});

test('loads the circuit-breaking DestinationRule with outlierDetection', () => {
  const o = loadOne(`
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: httpbin
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
`) as DestinationRule;
  assert.deepEqual(o.spec, {
    host: 'httpbin',
    trafficPolicy: {
      connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } },
      outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100 },
    },
  });
});

test('loads bookinfo DestinationRule subsets and a weighted VirtualService with fault injection', () => {
  const r = parseManifests(
    `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
  - name: v2
    labels:
      version: v2
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
    - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 50
    - destination:
        host: reviews
        subset: v2
      weight: 50
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: ratings
spec:
  hosts:
  - ratings
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    fault:
      delay:
        percentage:
          value: 100.0
        fixedDelay: 7s
    route:
    - destination:
        host: ratings
        subset: v1
  - route:
    - destination:
        host: ratings
        subset: v1
    timeout: 10s
    retries:
      attempts: 3
      perTryTimeout: 2s
      retryOn: gateway-error,connect-failure,refused-stream
`,
    'bookinfo.yaml',
  );
  assert.deepEqual(r.problems.map(formatProblem), []);
  assert.deepEqual(
    r.objects.map((o) => o.key),
    ['DestinationRule/default/reviews', 'VirtualService/default/reviews', 'VirtualService/default/ratings'],
  );
});

test('loads Telemetry access logging for the mesh', () => {
  loadOne(`
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata:
  name: mesh-default
  namespace: istio-system
spec:
  accessLogging:
    - providers:
      - name: envoy
`);
});

test('loads objects as kubectl get -o yaml prints them, bookkeeping and status included', () => {
  const r = parseManifests(
    `
apiVersion: v1
kind: Namespace
metadata:
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels:
    istio.io/dataplane-mode: ambient
    kubernetes.io/metadata.name: bookinfo
  name: bookinfo
  resourceVersion: "1234"
  uid: 6a0e8b3e-1111-2222-3333-444455556666
spec:
  finalizers:
  - kubernetes
status:
  phase: Active
---
apiVersion: v1
kind: Pod
metadata:
  annotations:
    ambient.istio.io/redirection: enabled
  creationTimestamp: "2024-05-01T10:00:00Z"
  generateName: productpage-v1-7f9d8c6b5-
  labels:
    app: productpage
    version: v1
    pod-template-hash: 7f9d8c6b5
  name: productpage-v1-7f9d8c6b5-abcde
  namespace: bookinfo
  ownerReferences:
  - apiVersion: apps/v1
    kind: ReplicaSet
    name: productpage-v1-7f9d8c6b5
    uid: 00000000-0000-0000-0000-000000000001
    controller: true
  resourceVersion: "5678"
  uid: 00000000-0000-0000-0000-000000000002
spec:
  containers:
  - image: docker.io/istio/examples-bookinfo-productpage-v1:1.20.1
    imagePullPolicy: IfNotPresent
    name: productpage
    ports:
    - containerPort: 9080
      protocol: TCP
    resources: {}
    volumeMounts:
    - mountPath: /tmp
      name: tmp
  dnsPolicy: ClusterFirst
  nodeName: worker-1
  restartPolicy: Always
  serviceAccount: bookinfo-productpage
  serviceAccountName: bookinfo-productpage
  terminationGracePeriodSeconds: 30
  volumes:
  - emptyDir: {}
    name: tmp
status:
  conditions:
  - lastTransitionTime: "2024-05-01T10:00:05Z"
    status: "True"
    type: Ready
  hostIP: 172.18.0.3
  phase: Running
  podIP: 10.244.1.7
  podIPs:
  - ip: 10.244.1.7
  qosClass: BestEffort
  startTime: "2024-05-01T10:00:00Z"
---
apiVersion: v1
kind: Service
metadata:
  labels:
    app: productpage
  name: productpage
  namespace: bookinfo
spec:
  clusterIP: 10.96.12.34
  clusterIPs:
  - 10.96.12.34
  internalTrafficPolicy: Cluster
  ipFamilies:
  - IPv4
  ipFamilyPolicy: SingleStack
  ports:
  - name: http
    port: 9080
    protocol: TCP
    targetPort: 9080
  selector:
    app: productpage
  sessionAffinity: None
  type: ClusterIP
status:
  loadBalancer: {}
`,
    'dump.yaml',
  );
  assert.deepEqual(r.problems.map(formatProblem), []);
  const pod = r.objects[1]!.object;
  assert.equal(pod.kind, 'Pod');
  if (pod.kind !== 'Pod') return;
  assert.deepEqual(pod.spec, {
    nodeName: 'worker-1',
    serviceAccountName: 'bookinfo-productpage',
    containers: [
      { name: 'productpage', image: 'docker.io/istio/examples-bookinfo-productpage-v1:1.20.1', ports: [{ containerPort: 9080, protocol: 'TCP' }] },
    ],
  });
  assert.deepEqual(pod.status, { podIP: '10.244.1.7', podIPs: ['10.244.1.7'], phase: 'Running', ready: true });
});
