/**
 * Helpers for xDS transport tests and benches: an in-memory ViewSource, a real grpc server on 127.0.0.1:0,
 * and a raw ADS stream whose responses can be awaited one by one.
 */
import * as grpc from '@grpc/grpc-js';
import {
  loadXdsProto,
  type ProxyInfo,
  type ResourceEntry,
  type ResourceSet,
  type ViewSource,
  type WireDeltaRequest,
  type WireDeltaResponse,
  type XdsMetrics,
} from '../../src/common/xds/index.js';
import { XdsServer, type XdsServerOptions } from '../../src/controller/xds/xds-server.js';

/**
 * Views keyed by string; copy-on-write snapshots that reuse unchanged ResourceEntry objects, like the real
 * controller source. Every mutation bumps the generation and notifies listeners (no batching).
 */
export class MemoryViewSource implements ViewSource {
  private gen = 1;
  private readonly sets = new Map<string, Map<string, ResourceEntry>>();
  private readonly listeners = new Set<(changedAt: number) => void>();
  /** Set to refuse proxies / route them to views. */
  viewKeyForFn: (proxy: ProxyInfo) => string = (p) => p.kind;
  allowedTypes: readonly string[];

  constructor(allowedTypes: readonly string[]) {
    this.allowedTypes = allowedTypes;
  }

  viewKeyFor(proxy: ProxyInfo): string {
    return this.viewKeyForFn(proxy);
  }
  typeUrlsFor(): readonly string[] {
    return this.allowedTypes;
  }
  resources(viewKey: string, typeUrl: string): ResourceSet {
    let set = this.sets.get(`${viewKey}\n${typeUrl}`);
    if (!set) {
      set = new Map();
      this.sets.set(`${viewKey}\n${typeUrl}`, set);
    }
    return set;
  }
  generation(): number {
    return this.gen;
  }
  onChange(listener: (changedAt: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  listenerCount(): number {
    return this.listeners.size;
  }

  /** Replaces many resources in one generation (one notification). */
  setMany(viewKey: string, typeUrl: string, bodies: Iterable<[string, unknown]>, notify = true): void {
    const next = new Map(this.resources(viewKey, typeUrl) as Map<string, ResourceEntry>);
    this.gen++;
    for (const [name, body] of bodies) next.set(name, { name, version: `v${this.gen}`, body });
    this.sets.set(`${viewKey}\n${typeUrl}`, next);
    if (notify) this.notify();
  }

  set(viewKey: string, typeUrl: string, name: string, body: unknown): string {
    this.setMany(viewKey, typeUrl, [[name, body]]);
    return `v${this.gen}`;
  }

  delete(viewKey: string, typeUrl: string, ...names: string[]): void {
    const next = new Map(this.resources(viewKey, typeUrl) as Map<string, ResourceEntry>);
    for (const name of names) next.delete(name);
    this.gen++;
    this.sets.set(`${viewKey}\n${typeUrl}`, next);
    this.notify();
  }

  version(viewKey: string, typeUrl: string, name: string): string | undefined {
    return this.resources(viewKey, typeUrl).get(name)?.version;
  }

  notify(): void {
    const now = Date.now();
    for (const l of this.listeners) l(now);
  }
}

/** Counts every metrics call. */
export class RecordingMetrics implements XdsMetrics {
  connected = 0;
  disconnected = 0;
  pushes = 0;
  pushedResources = 0;
  acks: number[] = [];
  nacks = 0;
  proxyConnected(): void {
    this.connected++;
  }
  proxyDisconnected(): void {
    this.disconnected++;
  }
  pushed(_typeUrl: string, resources: number): void {
    this.pushes++;
    this.pushedResources += resources;
  }
  acked(_typeUrl: string, latencyMs: number): void {
    this.acks.push(latencyMs);
  }
  nacked(): void {
    this.nacks++;
  }
}

export interface RunningXds {
  xds: XdsServer;
  grpcServer: grpc.Server;
  port: number;
  address: string;
  close(): Promise<void>;
}

/** An XdsServer on a real grpc server, listening on 127.0.0.1 (port 0 = any free port). */
export async function startXds(opts: XdsServerOptions, port = 0): Promise<RunningXds> {
  const xds = new XdsServer(opts);
  const grpcServer = new grpc.Server();
  xds.addTo(grpcServer);
  const bound = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    xds,
    grpcServer,
    port: bound,
    address: `127.0.0.1:${bound}`,
    close: async () => {
      xds.close();
      grpcServer.forceShutdown();
    },
  };
}

export interface StreamEnd {
  code: grpc.status;
  details: string;
}

/** A raw ADS stream: write requests, await responses in order, await the final status. */
export class RawAdsStream {
  readonly client: grpc.Client;
  readonly call: grpc.ClientDuplexStream<Partial<WireDeltaRequest>, WireDeltaResponse>;
  readonly ended: Promise<StreamEnd>;
  private readonly queue: WireDeltaResponse[] = [];
  private waiter: ((r: WireDeltaResponse) => void) | undefined;
  received = 0;

  /** `ownConnection`: a channel of its own (grpc-js otherwise shares one connection per target). */
  constructor(address: string, metadata = new grpc.Metadata(), credentials = grpc.credentials.createInsecure(), ownConnection = false) {
    const { Client } = loadXdsProto();
    this.client = new Client(address, credentials, {
      'grpc.max_receive_message_length': -1,
      ...(ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    });
    const method = (this.client as unknown as Record<string, (md: grpc.Metadata) => typeof this.call>)[
      'DeltaAggregatedResources'
    ]!;
    this.call = method.call(this.client, metadata);
    this.call.on('data', (r: WireDeltaResponse) => {
      this.received++;
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(r);
      } else this.queue.push(r);
    });
    this.ended = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => resolve({ code: s.code, details: s.details }));
      this.call.on('error', () => {}); // the status carries it
    });
  }

  write(req: Partial<WireDeltaRequest>): void {
    this.call.write(req);
  }

  /** The next response; rejects after timeoutMs. */
  next(timeoutMs = 2000): Promise<WireDeltaResponse> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no xDS response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(t);
        resolve(r);
      };
    });
  }

  /** Resolves true if no response arrives within ms (the response, if any, stays queued). */
  async quietFor(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.length === 0;
  }

  ack(res: WireDeltaResponse): void {
    this.write({ type_url: res.type_url, response_nonce: res.nonce });
  }

  nack(res: WireDeltaResponse, message: string): void {
    this.write({ type_url: res.type_url, response_nonce: res.nonce, error_detail: { code: 3, message } });
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export function wireNode(p: Partial<ProxyInfo> = {}): WireDeltaRequest['node'] {
  return {
    id: p.id ?? 'debug~test~1',
    kind: p.kind ?? 'debug',
    node_name: p.nodeName ?? 'node-a',
    namespace: p.namespace ?? '',
    name: p.name ?? '',
  };
}

export function bodyOf(r: { body: Buffer }): unknown {
  return JSON.parse(r.body.toString('utf8'));
}
