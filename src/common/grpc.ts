import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { fileURLToPath } from 'node:url';

const cache = new Map<string, grpc.GrpcObject>();

/**
 * Loads one of our .proto files (src/common/proto/, copied next to the compiled code by the build).
 * Field names stay snake_case as written in the .proto; 64-bit ints become numbers.
 */
export function loadProto(file: 'xds.proto' | 'ca.proto'): grpc.GrpcObject {
  let pkg = cache.get(file);
  if (!pkg) {
    const path = fileURLToPath(new URL(`./proto/${file}`, import.meta.url));
    const def = protoLoader.loadSync(path, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
    pkg = grpc.loadPackageDefinition(def);
    cache.set(file, pkg);
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
