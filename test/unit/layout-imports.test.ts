/**
 * DESIGN §1's one-way import rules, checked on every import under src/: a module may import only from the layers
 * listed for its own (plus itself). Test code is never imported from src/.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * Which layers each layer may import (its own is always allowed):
 * common ← identity ← hbone ← dataplane ← ztunnel, waypoint (never each other); the controller only common and
 * identity (its contract with proxies is xDS); local and demo drive processes through the CLI, so they import
 * common and, for how a component is started, that component's config.ts; cli wires everything.
 */
const ALLOWED: Record<string, readonly string[]> = {
  common: [],
  identity: ['common'],
  hbone: ['common', 'identity'],
  dataplane: ['common', 'identity', 'hbone'],
  ztunnel: ['common', 'identity', 'hbone', 'dataplane'],
  waypoint: ['common', 'identity', 'hbone', 'dataplane'],
  controller: ['common', 'identity'],
  local: ['common'],
  demo: ['common', 'local'],
  cli: ['common', 'identity', 'hbone', 'dataplane', 'ztunnel', 'waypoint', 'controller', 'local', 'demo'],
};
/** Components whose config.ts (how the process is started) local and demo may read. */
const STARTABLE = ['ztunnel', 'controller', 'waypoint'];

/** Source text with comments blanked out (strings and template literals kept, so specifiers survive). */
export function stripComments(src: string): string {
  let out = '';
  let i = 0;
  const templateDepth: number[] = []; // brace depth at which each open template's ${ started
  let braces = 0;
  while (i < src.length) {
    const c = src[i]!;
    const n = src[i + 1];
    if (c === '/' && n === '/') {
      while (i < src.length && src[i] !== '\n') { out += ' '; i++; }
      continue;
    }
    if (c === '/' && n === '*') {
      while (i < src.length && !(src[i] === '*' && src[i + 1] === '/')) { out += src[i] === '\n' ? '\n' : ' '; i++; }
      out += '  ';
      i += 2;
      continue;
    }
    if (c === "'" || c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      out += src.slice(i, j + 1);
      i = j + 1;
      continue;
    }
    if (c === '`' || (c === '}' && templateDepth.length && templateDepth[templateDepth.length - 1] === braces)) {
      if (c === '}') templateDepth.pop();
      let j = i + 1;
      while (j < src.length && src[j] !== '`' && !(src[j] === '$' && src[j + 1] === '{')) j += src[j] === '\\' ? 2 : 1;
      if (src[j] === '$') {
        templateDepth.push(braces);
        out += src.slice(i, j + 2);
        i = j + 2;
      } else {
        out += src.slice(i, j + 1);
        i = j + 1;
      }
      continue;
    }
    if (c === '{') braces++;
    if (c === '}') braces--;
    out += c;
    i++;
  }
  return out;
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
export function importsOf(src: string): string[] {
  const code = stripComments(src);
  const found: string[] = [];
  for (const m of code.matchAll(/(?:^|[;\n}])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?(['"])([^'"\n]+)\1/g)) found.push(m[2]!);
  for (const m of code.matchAll(/\bimport\s*\(\s*(['"])([^'"\n]+)\1\s*\)/g)) found.push(m[2]!);
  return found;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return walk(p);
    return /\.(ts|mts|cts)$/.test(e) && !e.endsWith('.d.ts') ? [p] : [];
  });
}

/** "src/<layer>/..." → layer; "test/..." → "test"; anything else → undefined. */
function layerOf(path: string): string | undefined {
  const parts = relative(ROOT, path).split(sep);
  if (parts[0] === 'test') return 'test';
  return parts[0] === 'src' && parts.length > 2 ? parts[1] : undefined;
}

/** The arrows against the rules, as "from → to (layer → layer)". */
export function violations(files: { path: string; text: string }[]): string[] {
  const out: string[] = [];
  for (const f of files) {
    const from = layerOf(f.path);
    if (!from) continue;
    for (const spec of importsOf(f.text)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = resolve(dirname(f.path), spec);
      const to = layerOf(target);
      const arrow = `${relative(ROOT, f.path)} → ${relative(ROOT, target)}`;
      if (to === undefined) { out.push(`${arrow} (outside src/)`); continue; }
      if (to === 'test') { out.push(`${arrow} (src/ must never import test code)`); continue; }
      if (to === from) continue;
      const allowed = ALLOWED[from];
      if (!allowed) { out.push(`${arrow} (layer "${from}" is not in DESIGN §1: add it to the rules)`); continue; }
      if (allowed.includes(to)) continue;
      const isStartConfig = (from === 'local' || from === 'demo') && STARTABLE.includes(to) && target.endsWith(`${sep}${to}${sep}config.js`);
      if (isStartConfig) continue;
      out.push(`${arrow} (${from} may import ${[from, ...allowed].join(', ')} only)`);
    }
  }
  return out;
}

it('finds static, type-only, re-exported and dynamic imports, and ignores ones in comments and strings', () => {
  const src = [
    "import a from './a.js';",
    "import type { B } from '../b.js';",
    "import {\n  c,\n  type D,\n} from './c.js';",
    "export * from './e.js';",
    "export { f } from './f.js';",
    "import './side-effect.js';",
    "const g = await import('./g.js');",
    "// import x from './commented.js';",
    "/* import y from './block.js'; */",
    "const s = \"import z from './in-a-string.js'\";",
    "const t = `spiffe://${td}/ns`; import h from './h.js';",
  ].join('\n');
  assert.deepEqual(importsOf(src).sort(), ['../b.js', './a.js', './c.js', './e.js', './f.js', './g.js', './h.js', './side-effect.js'].sort());
});

it('reports an import against the one-way rule and an import of test code', () => {
  const file = (p: string, text: string) => ({ path: join(ROOT, p), text });
  const found = violations([
    file('src/identity/x.ts', "import { a } from '../hbone/client.js';"),
    file('src/controller/x.ts', "import { b } from '../dataplane/state/proxy-state.js';"),
    file('src/ztunnel/x.ts', "import { c } from '../waypoint/app.js';"),
    file('src/common/x.ts', "import { d } from '../../test/helpers/procs.js';"),
    file('src/hbone/x.ts', "import { e } from '../identity/index.js';"),
    file('src/local/x.ts', "import { f } from '../ztunnel/config.js';"),
  ]);
  assert.equal(found.length, 4, found.join('\n'));
  assert.match(found[0]!, /src\/identity\/x\.ts → src\/hbone\/client\.js/);
  assert.match(found[1]!, /controller may import controller, common, identity only/);
  assert.match(found[2]!, /ztunnel → |ztunnel may import/);
  assert.match(found[3]!, /never import test code/);
});

it('every import under src/ follows DESIGN §1 (common ← identity ← hbone ← dataplane ← ztunnel, waypoint; controller: common, identity)', () => {
  const files = walk(join(ROOT, 'src')).map((path) => ({ path, text: readFileSync(path, 'utf8') }));
  assert.ok(files.length > 50, `expected the sources under ${join(ROOT, 'src')}, found ${files.length} files`);
  const found = violations(files);
  assert.deepEqual(found, [], `imports against DESIGN §1:\n${found.join('\n')}`);
});
