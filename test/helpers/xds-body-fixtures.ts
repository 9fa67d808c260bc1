/**
 * Resource bodies of every xDS type with every optional field set, and with every optional field unset (plus the
 * in-between cases where absent and present-but-empty differ), for the body-encoding tests.
 */
import { TYPE_AUTHORIZATION, TYPE_POLICY, TYPE_ROUTE, TYPE_SERVICE, TYPE_WORKLOAD } from '../../src/common/xds/resources.js';
import type {
  AuthorizationResource,
  RouteResource,
  ServiceResource,
  WaypointPolicyResource,
  WorkloadResource,
} from '../../src/common/xds/resources.js';

const ID = (sa: string) => `spiffe://cluster.local/ns/default/sa/${sa}`;

export const WORKLOADS: Record<string, WorkloadResource> = {
  'default/full': {
    uid: 'default/full', name: 'full', namespace: 'default', node: 'node-a', serviceAccount: 'web', identity: ID('web'),
    addresses: ['10.0.0.1', 'fd00::1'], labels: { app: 'web', version: 'v1' }, protocol: 'HBONE', healthy: true,
    canonicalName: 'web', canonicalRevision: 'v1', workloadName: 'web', namedPorts: { http: 8080, grpc: 9090 },
    services: ['default/web', 'default/web-headless'],
    waypoint: { namespace: 'default', name: 'waypoint', identity: ID('waypoint'), address: '10.0.0.9' },
    waypointFor: 'default/waypoint',
  },
  'default/minimal': {
    uid: '', name: '', namespace: '', node: '', serviceAccount: '', identity: '', addresses: [], labels: {},
    protocol: 'TCP', healthy: false, canonicalName: '', canonicalRevision: '', namedPorts: {}, services: [],
  },
  'default/waypoint-no-address': {
    uid: 'default/w', name: 'w', namespace: 'default', node: 'node-b', serviceAccount: 'default', identity: ID('default'),
    addresses: ['10.0.0.2'], labels: { 'app.kubernetes.io/name': 'ünïcode-✓' }, protocol: 'HBONE', healthy: true,
    canonicalName: 'w', canonicalRevision: 'latest', namedPorts: { zero: 0, max: 65535 }, services: [],
    waypoint: { namespace: 'default', name: 'waypoint', identity: ID('waypoint') },
  },
};

export const SERVICES: Record<string, ServiceResource> = {
  'default/full': {
    name: 'full', namespace: 'default', hostname: 'full.default.svc.cluster.local', vips: ['10.96.0.1', 'fd00:96::1'],
    ports: [
      { name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' },
      { port: 443, targetPort: 'https' },
      { name: 'zero', port: 0, targetPort: 0 },
    ],
    endpoints: [
      { workload: 'default/full', address: '10.0.0.1', ports: { '80': 8080, '443': 8443 }, healthy: true },
      { workload: 'default/minimal', address: '', ports: {}, healthy: false },
    ],
    waypoint: { namespace: 'default', name: 'waypoint', identity: ID('waypoint'), address: '10.0.0.9' },
  },
  'default/minimal': { name: 'minimal', namespace: 'default', hostname: '', vips: [], ports: [], endpoints: [] },
};

export const AUTHORIZATIONS: Record<string, AuthorizationResource> = {
  'authz/default/full': {
    type: 'authz', name: 'full', namespace: 'default', scope: 'workload', selector: { app: 'web' }, action: 'DENY',
    rules: [
      {
        from: [{
          principals: ['cluster.local/ns/a/sa/b'], notPrincipals: ['x'], namespaces: ['a'], notNamespaces: ['b'],
          serviceAccounts: ['a/b'], notServiceAccounts: ['c/d'], ipBlocks: ['10.0.0.0/8'], notIpBlocks: ['10.1.0.0/16'],
          ports: ['80'], notPorts: ['81'],
          when: [{ key: 'source.ip', values: ['1.2.3.4'], notValues: ['5.6.7.8'] }, { key: 'source.namespace' }],
        }],
        to: [{ ports: ['8080'] }, {}],
        when: [{ key: 'destination.port', values: [] }],
      },
      {},
      { from: [], to: [], when: [] },
    ],
    notes: ['rule 0: methods are L7-only; the rule was dropped'],
    waypointEnforced: [ID('waypoint')],
  },
  'authz/default/minimal': { type: 'authz', name: 'minimal', namespace: 'default', scope: 'namespace', action: 'ALLOW', rules: [], notes: [] },
  'authz/default/empty-lists': {
    type: 'authz', name: 'empty-lists', namespace: 'default', scope: 'global', selector: {}, action: 'AUDIT',
    rules: [{ from: [{ principals: [], when: [] }] }], notes: [], waypointEnforced: [],
  },
  'peerauthn/default/full': {
    type: 'peerauthn', name: 'full', namespace: 'default', scope: 'workload', selector: { app: 'web' }, mode: 'STRICT',
    portLevel: { '8080': 'DISABLE', '9090': 'PERMISSIVE' },
  },
  'peerauthn/istio-system/minimal': { type: 'peerauthn', name: 'minimal', namespace: 'istio-system', scope: 'global', mode: 'UNSET', portLevel: {} },
};

export const ROUTES: Record<string, RouteResource> = {
  'default/full': {
    service: 'default/full', hostname: 'full.default.svc.cluster.local',
    origin: { kind: 'HTTPRoute', objects: ['default/r1', 'default/r2'], shadowed: [{ object: 'default/vs', reason: 'an HTTPRoute wins over a VirtualService' }] },
    rules: [
      {
        name: 'HTTPRoute/default/r1/rules[0]/matches[0]',
        match: {
          path: { type: 'prefix', value: '/api', ignoreCase: true, segments: true },
          method: { type: 'exact', value: 'GET' },
          authority: { type: 'regex', value: '.*\\.example', invert: false },
          headers: [{ name: 'x-present', type: 'present' }, { name: 'x-b', type: 'exact', value: '1', invert: true }],
          queryParams: [{ name: 'q', type: 'prefix', value: 'v' }],
          port: 8080,
        },
        action: {
          kind: 'forward',
          backends: [
            {
              service: 'default/full', port: 80, subset: 'v1', weight: 90,
              requestHeaders: { set: [['x-s', '1']], add: [['x-a', '2'], ['x-a', '3']], remove: ['x-r'] },
              responseHeaders: {},
              fail: { status: 500, flag: 'NC', reason: 'backendRef Service default/nope does not exist' },
            },
            { service: 'default/full', weight: 0 },
            { service: 'default/other', weight: 2.5 },
          ],
          requestHeaders: { set: [] },
          responseHeaders: { remove: [] },
          rewrite: { fullPath: '/x', prefix: '/y', authority: 'h.example' },
          mirrors: [{ backend: { service: 'default/mirror', port: 81, subset: 's', requestHeaders: { add: [['a', 'b']] }, fail: { status: 503, flag: 'UH', reason: 'r' } }, percentage: 12.5 }, { backend: { service: 'default/m2' }, percentage: 100 }],
          timeoutMs: 1500,
          perTryTimeoutMs: 500,
          retry: { retries: 2, retryOn: ['5xx', 'connect-failure'], retriableStatusCodes: [503, 504], backoffBaseMs: 25 },
          fault: { delay: { percentage: 0.5, delayMs: 100 }, abort: { percentage: 10, httpStatus: 503, grpcStatus: 14 } },
        },
      },
      {
        name: 'VirtualService/default/vs/http[1]',
        match: {},
        action: { kind: 'redirect', redirect: { scheme: 'https', host: 'h.example', port: 443, fullPath: '/f', prefix: '/p', statusCode: 301 }, responseHeaders: { set: [['a', 'b']] } },
      },
      { name: 'r2', match: { port: 0 }, action: { kind: 'redirect', redirect: { statusCode: 302 } } },
      { name: 'r3', match: {}, action: { kind: 'fail', status: 503, flag: 'NR', reason: 'no route' } },
      { name: 'r4', match: { headers: [], queryParams: [] }, action: { kind: 'forward', backends: [], mirrors: [], retry: { retries: 1, retryOn: [] }, fault: {} } },
    ],
  },
  'default/minimal': { service: 'default/minimal', hostname: '', origin: { kind: 'default', objects: [] }, rules: [] },
};

export const POLICIES: Record<string, WaypointPolicyResource> = {
  'backend/default/full': {
    type: 'backend', service: 'default/full', origin: 'default/full-dr',
    policy: {
      loadBalancer: 'ROUND_ROBIN',
      connectionPool: { maxConnections: 100, maxPendingRequests: 10, maxRequests: 50, maxRequestsPerConnection: 0, maxRetries: 3, connectTimeoutMs: 1000, idleTimeoutMs: 3_600_000 },
      outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
    },
    subsets: {
      v1: { labels: { version: 'v1' }, policy: {} },
      v2: { labels: {}, policy: { loadBalancer: 'RANDOM', connectionPool: {}, outlierDetection: { intervalMs: 1, baseEjectionTimeMs: 2, maxEjectionPercent: 3 } } },
    },
  },
  'backend/default/minimal': { type: 'backend', service: 'default/minimal', origin: 'default/dr', policy: {}, subsets: {} },
  'authz/default/waypoint-scope': {
    type: 'authz', policy: 'default/p', action: 'AUDIT', scope: { kind: 'waypoint' },
    rules: [
      {
        from: [{
          principals: ['a'], notPrincipals: ['b'], namespaces: ['c'], notNamespaces: ['d'], serviceAccounts: ['e/f'],
          notServiceAccounts: ['g/h'], ipBlocks: ['10.0.0.0/8'], notIpBlocks: ['10.1.0.0/16'], remoteIpBlocks: ['1.0.0.0/8'],
          notRemoteIpBlocks: ['1.1.0.0/16'], requestPrincipals: ['iss/sub'], notRequestPrincipals: ['*'],
        }, {}],
        to: [{ hosts: ['h'], notHosts: ['i'], ports: ['80'], notPorts: ['81'], methods: ['GET'], notMethods: ['POST'], paths: ['/a*'], notPaths: ['/b'] }],
        when: [{ key: 'request.headers[x-a]', values: ['1'], notValues: [] }],
      },
      {},
    ],
    binding: 'targetRefs Gateway default/waypoint',
  },
  'authz/default/services-scope': { type: 'authz', policy: 'default/s', action: 'ALLOW', scope: { kind: 'services', services: ['default/full'] }, rules: [], binding: 'targetRefs Service default/full' },
  'authz/default/services-empty': { type: 'authz', policy: 'default/s2', action: 'DENY', scope: { kind: 'services', services: [] }, rules: [{ from: [], to: [] }], binding: '' },
  'authz/default/workloads-scope': {
    type: 'authz', policy: 'default/w', action: 'ALLOW',
    scope: { kind: 'workloads', selector: { app: 'orders' }, namespace: 'default', services: ['default/orders'], workloads: ['default/orders-1'] },
    rules: [], binding: 'selector',
  },
  'authz/istio-system/workloads-minimal': {
    type: 'authz', policy: 'istio-system/w', action: 'DENY', scope: { kind: 'workloads', selector: {}, namespace: 'istio-system', services: [] },
    rules: [], binding: 'selector',
  },
  'authz/default/workloads-empty': {
    type: 'authz', policy: 'default/w2', action: 'DENY', scope: { kind: 'workloads', selector: {}, namespace: 'default', services: [], workloads: [] },
    rules: [], binding: 'selector',
  },
  'tracing/istio-system/full': {
    type: 'tracing', origin: 'istio-system/t', origins: ['meshConfig', 'istio-system/t'], services: ['default/full'], samplingPercentage: 12.5,
    provider: { name: 'zipkin', kind: 'zipkin', service: 'istio-system/zipkin', host: '10.0.0.5', port: 9411, address: 'vip', path: '/api/v2/spans', protocol: 'http', maxTagLength: 256 },
    problem: 'none', disableSpanReporting: true,
  },
  'tracing/istio-system/minimal': { type: 'tracing', origin: 'meshConfig', samplingPercentage: 0 },
  'tracing/default/provider-minimal': {
    type: 'tracing', origin: 'default/t', origins: [], services: [], samplingPercentage: 100,
    provider: { name: 'otel', kind: 'opentelemetry', service: 'o/c', host: 'c', port: 4318, path: '/v1/traces' },
    disableSpanReporting: false,
  },
};

/** Every fixture by type URL. */
export const BODIES: Record<string, Record<string, unknown>> = {
  [TYPE_WORKLOAD]: WORKLOADS,
  [TYPE_SERVICE]: SERVICES,
  [TYPE_AUTHORIZATION]: AUTHORIZATIONS,
  [TYPE_ROUTE]: ROUTES,
  [TYPE_POLICY]: POLICIES,
};
