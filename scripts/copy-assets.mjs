// Copies non-TypeScript assets (protobuf definitions) next to the compiled code.
import { cpSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
mkdirSync(join(root, 'dist/src/common/proto'), { recursive: true });
cpSync(join(root, 'src/common/proto'), join(root, 'dist/src/common/proto'), { recursive: true });
