/**
 * RE2 patterns (what Envoy and Istio accept in `regex` matches) as JavaScript RegExps that match the WHOLE value, as
 * Envoy's `safe_regex` full match does. The translation covers the RE2 syntax JavaScript lacks and refuses what RE2
 * itself refuses, so a pattern that Envoy would reject never silently means something else here:
 *  - leading inline flags `(?i)`, `(?s)`, `(?m)` (and combinations) become RegExp flags; `(?U)` and inline flags
 *    anywhere else are refused;
 *  - `(?P<name>` becomes `(?<name>`; `\A` and `\z` become `^` and `$`; `\Q...\E` quotes literally;
 *    POSIX classes inside brackets (`[[:alpha:]]`) become ranges;
 *  - lookarounds, backreferences (`\1`, `(?P=name)`, `\k<name>`) and `\C` are refused: RE2 has none of them.
 * Values in HTTP never hold a line break, so the `m` flag cannot make the anchors match inside a value.
 * JavaScript's engine backtracks where RE2 is linear: a pattern with nested quantifiers can be slow on hostile input;
 * the values matched are bounded by the HTTP parser's header and URL limits.
 */

export type Re2Result = { regex: RegExp } | { problem: string };

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7F',
  blank: '\\t ',
  cntrl: '\\x00-\\x1F\\x7F',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** Compiles an RE2 pattern for a full match (anchored at both ends); `problem` says why it cannot be used. */
export function compileRe2(pattern: string, opts: { ignoreCase?: boolean } = {}): Re2Result {
  let flags = opts.ignoreCase ? 'i' : '';
  let src = pattern;
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead) {
    if (lead[1]!.includes('U')) return { problem: `regex ${JSON.stringify(pattern)}: the ungreedy flag (?U) is not supported` };
    for (const f of lead[1]!) if (!flags.includes(f)) flags += f;
    src = src.slice(lead[0].length);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1];
      if (n === undefined) return { problem: `regex ${JSON.stringify(pattern)}: trailing backslash` };
      if (n === 'Q') {
        const end = src.indexOf('\\E', i + 2);
        const literal = end < 0 ? src.slice(i + 2) : src.slice(i + 2, end);
        out += literal.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
        i = end < 0 ? src.length : end + 1;
        continue;
      }
      if (!inClass && n === 'A') { out += '^'; i++; continue; }
      if (!inClass && n === 'z') { out += '$'; i++; continue; }
      if (n === 'C') return { problem: `regex ${JSON.stringify(pattern)}: \\C is not supported` };
      if (/[1-9]/.test(n) || n === 'k') return { problem: `regex ${JSON.stringify(pattern)}: backreferences are not RE2 syntax` };
      if (n === 'p' || n === 'P') {
        if (!flags.includes('u')) flags += 'u';
        const one = src[i + 2];
        if (one !== undefined && one !== '{') { out += `\\${n}{${one}}`; i += 2; continue; }
      }
      out += c + n;
      i++;
      continue;
    }
    if (inClass) {
      if (c === '[' && src[i + 1] === ':') {
        const end = src.indexOf(':]', i + 2);
        const name = end < 0 ? '' : src.slice(i + 2, end);
        const negated = name.startsWith('^');
        const range = POSIX[negated ? name.slice(1) : name];
        if (range === undefined) return { problem: `regex ${JSON.stringify(pattern)}: unknown class [:${name}:]` };
        if (negated) return { problem: `regex ${JSON.stringify(pattern)}: negated POSIX classes [:^${name.slice(1)}:] are not supported` };
        out += range;
        i = end + 1;
        continue;
      }
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      if (src[i + 1] === '^') { out += '^'; i++; }
      if (src[i + 1] === ']') { out += '\\]'; i++; }
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      if (rest.startsWith('P<')) { out += '(?<'; i += 3; continue; }
      if (rest.startsWith(':')) { out += '(?:'; i += 2; continue; }
      if (/^(?:=|!|<=|<!)/.test(rest)) return { problem: `regex ${JSON.stringify(pattern)}: lookarounds are not RE2 syntax` };
      if (rest.startsWith('P=')) return { problem: `regex ${JSON.stringify(pattern)}: backreferences are not RE2 syntax` };
      if (rest.startsWith('<')) { out += '(?<'; i += 2; continue; }
      return { problem: `regex ${JSON.stringify(pattern)}: inline flags are supported only at the start` };
    }
    out += c;
  }
  try {
    return { regex: new RegExp(`^(?:${out})$`, flags) };
  } catch (err) {
    return { problem: `regex ${JSON.stringify(pattern)}: ${(err as Error).message}` };
  }
}
