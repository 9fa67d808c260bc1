/** A RequestRecord as the waypoint would fill it for a proxied request (bookinfo names), with overrides. */
import type { RequestRecord } from '../../src/waypoint/telemetry/request-record.js';

export function record(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    startMs: Date.parse('2025-01-02T03:04:05.000Z'), durationMs: 12.5, method: 'GET', authority: 'reviews:9080', path: '/reviews/1',
    scheme: 'http', protocol: 'HTTP/1.1', grpc: false, status: 200, responseFlags: [], requestBytes: 120, responseBytes: 2300,
    source: {
      workload: 'productpage-v1-7d9f', namespace: 'bookinfo', principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage',
      canonicalName: 'productpage', canonicalRevision: 'v1', app: 'productpage', version: 'v1', address: '127.0.10.3:40112',
    },
    destination: {
      workload: 'reviews-v2-55b', namespace: 'bookinfo', principal: 'spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews',
      canonicalName: 'reviews', canonicalRevision: 'v2', app: 'reviews', version: 'v2', address: '127.0.10.7:9080',
      service: 'bookinfo/reviews', serviceHost: 'reviews.bookinfo.svc.cluster.local', port: 9080,
    },
    route: 'VirtualService/bookinfo/reviews/http[0]', upstream: '127.0.10.7:9080', upstreamCluster: 'outbound|9080|v2|reviews.bookinfo.svc.cluster.local',
    attempts: 1, connectionSecurityPolicy: 'mutual_tls', userAgent: 'curl/8.5.0', requestId: 'a6f1c0de-1111-4222-8333-944455556666',
    ...over,
  };
}
