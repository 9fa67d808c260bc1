import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bug } from './errors.js';

export type ProtoFile = 'xds.proto' | 'ca.proto';
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
