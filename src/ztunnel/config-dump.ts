/**
 * The body of the ztunnel's `/config_dump` (admin, 15000): what it holds from the controller, its certificates
 * (serials and validity, never keys), listeners, file descriptors and ejected endpoints.
 */
import { X509Certificate } from 'node:crypto';
import type { ProxyStateView } from '../dataplane/state/proxy-state.js';
import type { FdGuard } from './fd-guard.js';
import type { ZtunnelIdentities } from './identities.js';
import type { Listeners } from './listeners.js';
import type { EndpointHealth } from './proxy/endpoint-health.js';
import type { CaptureSnapshot } from './capture/pod-capture.js';

export interface ZtunnelDumpSources {
  node: string;
  controller: () => { address: string; connected: boolean };
  state: ProxyStateView;
  identities: ZtunnelIdentities;
  drainMs: number;
  /** Capture mode: the rules this ztunnel applied, per pod. */
  capture?: () => CaptureSnapshot;
}

export function ztunnelConfigDump(s: ZtunnelDumpSources): Record<string, unknown> {
  return {
    node: s.node,
    controller: s.controller(),
    workloads: [...s.state.workloads.values()],
    services: [...s.state.services.values()],
    policies: [...s.state.policies.entries()].map(([key, p]) => ({ key, ...p })),
    certificates: s.identities.list().map((c) => {
      const leaf = new X509Certificate(c.certChainPem[0]!);
      return { identity: c.identity.toString(), notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), serial: leaf.serialNumber, issuer: leaf.issuer, chainLength: c.certChainPem.length };
    }),
    drainMs: s.drainMs,
    capture: s.capture ? s.capture() : { enabled: false },
  };
}

export interface DataPlaneDumpSources {
  liveConnections: () => number;
  listeners: Listeners;
  fd: FdGuard;
  endpoints: EndpointHealth;
}

/** The data path's part (of the one process, or of one data-plane worker). */
export function dataPlaneDump(s: DataPlaneDumpSources) {
  return {
    connections: { live: s.liveConnections() },
    listeners: s.listeners.list(),
    fileDescriptors: s.fd.snapshot(),
    ejectedEndpoints: s.endpoints.snapshot().map((e) => ({ endpoint: e.endpoint, until: new Date(e.until).toISOString(), ejections: e.ejections })),
  };
}
