import * as grpc from '@grpc/grpc-js';
import { StraitError } from '../common/errors.js';
import { loadProto, serviceOf } from '../common/grpc.js';

export interface CaClientOptions {
  /** host:port of the controller's gRPC listener (15012). */
  address: string;
  credentials: grpc.ChannelCredentials;
  /** Called per request, so a rotated token is picked up. */
  metadata: () => Record<string, string>;
  /** Per-request deadline. */
  timeoutMs?: number;
  channelOptions?: grpc.ChannelOptions;
}

export const DEFAULT_CA_REQUEST_TIMEOUT_MS = 10_000;
/** A CA answer is a short PEM chain (a few KiB); anything near this is not one. */
export const MAX_CA_RESPONSE_BYTES = 1024 * 1024;
/** Certificates in a chain (leaf, intermediates, root). */
export const MAX_CA_CHAIN_LENGTH = 8;
/** Bytes of one PEM certificate. */
export const MAX_CA_CERT_PEM_BYTES = 64 * 1024;

/** The proxies' side of the CA: CreateCertificate(csr, identity) → PEM chain (leaf first, root last). */
export class CaClient {
  private readonly client: grpc.Client & Record<string, (...a: unknown[]) => unknown>;

  constructor(private readonly opts: CaClientOptions) {
    const Ctor = serviceOf(loadProto('ca.proto'), 'strait.ca.v1.CertificateService');
    // A controller cannot make this process buffer more than one bounded answer per request.
    this.client = new Ctor(opts.address, opts.credentials, { 'grpc.max_receive_message_length': MAX_CA_RESPONSE_BYTES, ...opts.channelOptions }) as never;
  }

  createCertificate(csrPem: string, identity: string, validitySeconds = 0): Promise<string[]> {
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

  close(): void {
    this.client.close();
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
