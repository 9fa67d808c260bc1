import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { bug } from './errors.js';

export type ProtoFile = 'xds.proto' | 'ca.proto' | 'demo.proto';
const definitions = new Map<ProtoFile, protoLoader.PackageDefinition>();
const packages = new Map<ProtoFile, grpc.GrpcObject>();

/**
 * The package definition of one of our .proto files (src/common/proto/, copied next to the compiled code by the
 * build). Field names stay snake_case as written; 64-bit integers arrive as strings.
 */
export function loadProtoDefinition(file: ProtoFile): protoLoader.PackageDefinition {
  let def = definitions.get(file);
  if (!def) {
    const path = fileURLToPath(new URL(`./proto/${file}`, import.meta.url));
    if (!existsSync(path)) throw bug(`${file} not found at ${path}; the build did not copy src/common/proto (run \`npm run build\`)`);
    def = protoLoader.loadSync(path, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    definitions.set(file, def);
  }
  return def;
}

/** The loaded gRPC package of one of our .proto files. */
export function loadProto(file: ProtoFile): grpc.GrpcObject {
  let pkg = packages.get(file);
  if (!pkg) {
    pkg = grpc.loadPackageDefinition(loadProtoDefinition(file));
    packages.set(file, pkg);
  }
  return pkg;
}

/** The service definition at a dotted path inside a loaded package (e.g. "strait.ca.v1.CertificateService"). */
export function serviceOf(pkg: grpc.GrpcObject, dotted: string): grpc.ServiceClientConstructor {
  let node: unknown = pkg;
  for (const part of dotted.split('.')) node = (node as Record<string, unknown>)[part];
  return node as grpc.ServiceClientConstructor;
}

/** Metadata value as a string (first value), or undefined. */
export function metadataValue(md: grpc.Metadata, key: string): string | undefined {
  const v = md.get(key)[0];
  return v === undefined ? undefined : typeof v === 'string' ? v : v.toString('utf8');
}

/**
 * Channel (client) credentials that trust `rootPem` and speak TLS 1.3 only. grpc-js takes no TLS version option,
 * but keeps the secure context it is given, so the version is set there (never via tls.DEFAULT_MIN_VERSION, which
 * would change every TLS socket of the process).
 */
export function tls13ChannelCredentials(rootPem: string): grpc.ChannelCredentials {
  return grpc.credentials.createFromSecureContext(tls.createSecureContext({ ca: rootPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }));
}

/** Server credentials of grpc-js with TLS 1.3 as the only version (its createSsl has no option for it). */
class Tls13ServerCredentials extends grpc.ServerCredentials {
  constructor(context: tls.SecureContextOptions) {
    super({ requestCert: false }, { ...context, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' });
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/** Server credentials: this key and chain, client certificates not asked for, TLS 1.3 only. */
export function tls13ServerCredentials(o: { rootPem: string; keyPem: string; certChainPem: string }): grpc.ServerCredentials {
  return new Tls13ServerCredentials({ ca: o.rootPem, key: o.keyPem, cert: o.certChainPem });
}
