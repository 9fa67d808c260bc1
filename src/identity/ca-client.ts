import * as grpc from '@grpc/grpc-js';
import { StraitError } from '../common/errors.js';
import { loadProto, serviceOf } from '../common/grpc.js';

export interface CaClientOptions {
  /** host:port of the controller's gRPC listener (15012). */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** Called per request, so a rotated token is picked up. */
  metadata: () => Record<string, string>;
  /** Per-request deadline (from when the call starts, not from when it was queued). */
  timeoutMs?: number;
  /** Calls in flight at once; more wait their turn here (default DEFAULT_CA_MAX_CONCURRENT_CALLS). */
  maxConcurrentCalls?: number;
  channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_CA_REQUEST_TIMEOUT_MS = 10_000;
/**
 * A node asks for all its pods' identities at start; this many at a time keeps it well under the controller's
 * --ca-max-calls-per-credential (32) and spreads the signing work.
 */
export const DEFAULT_CA_MAX_CONCURRENT_CALLS = 8;
/** A CA answer is a short PEM chain (a few KiB); anything near this is not one. */
export const MAX_CA_RESPONSE_BYTES = 1024 * 1024;
/** Certificates in a chain (leaf, intermediates, root). */
export const MAX_CA_CHAIN_LENGTH = 8;
/** Bytes of one PEM certificate. */
export const MAX_CA_CERT_PEM_BYTES = 64 * 1024;

/**
 * The proxies' side of the CA: CreateCertificate(csr, identity) → PEM chain (leaf first, root last).
 * Invariant: at most maxConcurrentCalls calls are in flight; `waiting` holds the rest in arrival order.
 * A refusal (RESOURCE_EXHAUSTED when over the controller's per-credential rate, among others) is returned to the
 * caller, which retries with backoff (CertStore).
 */
export class CaClient {
  private readonly client: grpc.Client & Record<string, (...a: unknown[]) => unknown>;
  private readonly maxInFlight: number;
  private inFlight = 0;
  private readonly waiting: Array<{ go: () => void; fail: (err: Error) => void }> = [];
  private closed = false;

  constructor(private readonly opts: CaClientOptions) {
    const Ctor = serviceOf(loadProto('ca.proto'), 'strait.ca.v1.CertificateService');
    // A controller cannot make this process buffer more than one bounded answer per request.
    this.client = new Ctor(opts.address, opts.credentials, { 'grpc.max_receive_message_length': MAX_CA_RESPONSE_BYTES, ...opts.channelOptions }) as never;
    this.maxInFlight = opts.maxConcurrentCalls ?? DEFAULT_CA_MAX_CONCURRENT_CALLS;
    if (!Number.isInteger(this.maxInFlight) || this.maxInFlight < 1) {
      throw new StraitError('STRAIT_ERR_CONFIG', `CaClient maxConcurrentCalls must be an integer >= 1 (got ${this.maxInFlight})`);
    }
  }

  async createCertificate(csrPem: string, identity: string, validitySeconds = 0): Promise<string[]> {
    // A finishing call hands its place straight to the next waiter, so inFlight never passes the limit.
    if (this.closed) throw this.closedError(identity);
    if (this.inFlight >= this.maxInFlight) await new Promise<void>((go, fail) => this.waiting.push({ go, fail }));
    else this.inFlight++;
    try {
      return await this.call(csrPem, identity, validitySeconds);
    } finally {
      const next = this.waiting.shift();
      if (next) next.go();
      else this.inFlight--;
    }
  }

  private call(csrPem: string, identity: string, validitySeconds: number): Promise<string[]> {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(this.opts.metadata())) md.set(k, v);
    const deadline = Date.now() + (this.opts.timeoutMs ?? DEFAULT_CA_REQUEST_TIMEOUT_MS);
    return new Promise((resolve, reject) => {
      this.client.CreateCertificate(
        { csr: csrPem, identity, validity_duration: validitySeconds },
        md,
        { deadline },
        (err: grpc.ServiceError | null, res: { cert_chain: string[] }) => {
          if (err) {
            reject(new StraitError(codeFor(err.code), `certificate for ${identity} refused by the CA at ${this.opts.address}: ${grpc.status[err.code]}: ${err.details}`, { cause: err }));
            return;
          }
          const chain = res.cert_chain ?? [];
          const bad = chain.length === 0 || chain.length > MAX_CA_CHAIN_LENGTH ? `${chain.length} certificates (1 to ${MAX_CA_CHAIN_LENGTH} expected)` : chain.find((c) => c.length > MAX_CA_CERT_PEM_BYTES) ? `a certificate over ${MAX_CA_CERT_PEM_BYTES} bytes` : undefined;
          if (bad) reject(new StraitError('STRAIT_ERR_CERT_INVALID', `the CA at ${this.opts.address} answered the request for ${identity} with ${bad}`));
          else resolve(chain);
        },
      );
    });
  }

  /** Closes the channel; calls still waiting for their turn fail. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.fail(this.closedError('a queued request'));
    this.client.close();
  }

  private closedError(identity: string): StraitError {
    return new StraitError('STRAIT_ERR_CERT_ROTATION', `certificate for ${identity} not requested: the CA client for ${this.opts.address} is closed`);
  }
}

function codeFor(status: grpc.status): 'STRAIT_ERR_AUTH_TOKEN' | 'STRAIT_ERR_IDENTITY_DENIED' | 'STRAIT_ERR_CSR_INVALID' | 'STRAIT_ERR_CERT_ROTATION' {
  switch (status) {
    case grpc.status.UNAUTHENTICATED: return 'STRAIT_ERR_AUTH_TOKEN';
    case grpc.status.PERMISSION_DENIED: return 'STRAIT_ERR_IDENTITY_DENIED';
    case grpc.status.INVALID_ARGUMENT: return 'STRAIT_ERR_CSR_INVALID';
    default: return 'STRAIT_ERR_CERT_ROTATION';
  }
}
