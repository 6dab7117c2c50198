/**
 * Where the SQL is in a notebook cell (pure, no editor): the body of a `%%sql` cell (and
 * any SQL after the options on its first line), and the rest of a line after `%sql`
 * and its options; and the `{{ … }}` parameters inside it.
 */

export interface Range {
  from: number;
  to: number;
}

/**
 * The `%%sql` / `%sql` options that take a value (`--catalog tpch`); the others are flags.
 * Kept equal to the Python magic's options by tests/unit/test_sql_completion_magic.py.
 */
export const VALUED_OPTIONS = [
  '-o',
  '--out',
  '--chart',
  '--x',
  '--y',
  '--color',
  '--agg',
  '--catalog',
  '--schema',
  '--limit',
  '--cluster',
  '--routing-group',
  '--as'
];
export const FLAG_OPTIONS = ['--no-display', '--explain', '-h', '--help'];

const TOKEN = /\s*("[^"]*"|'[^']*'|\S+)/y;

/** Offset in `text` where the SQL starts, after the magic's options (its own rule). */
export function skipOptions(text: string, start: number): number {
  let pos = start;
  for (;;) {
    TOKEN.lastIndex = pos;
    const m = TOKEN.exec(text);
    if (!m) {
      return text.length;
    }
    const word = m[1];
    const name = word.split('=', 1)[0];
    if (FLAG_OPTIONS.includes(name)) {
      pos = TOKEN.lastIndex;
    } else if (VALUED_OPTIONS.includes(name)) {
      pos = TOKEN.lastIndex;
      if (!word.includes('=')) {
        TOKEN.lastIndex = pos;
        const value = TOKEN.exec(text);
        if (!value) {
          return text.length;
        }
        pos = TOKEN.lastIndex;
      }
    } else {
      return pos + (m[0].length - word.length);
    }
  }
}

const CELL_MAGIC = /^\s*%%sql(?=\s|$)/;
const LINE_MAGIC = /(^|[\s=(])%sql(?=\s|$)/g;

/** The SQL ranges of a cell's text. */
export function sqlRanges(text: string): Range[] {
  const cell = CELL_MAGIC.exec(text);
  if (cell) {
    const headerEnd = text.includes('\n') ? text.indexOf('\n') : text.length;
    const header = text.slice(0, headerEnd);
    const start = skipOptions(header, cell[0].length);
    const from = start >= headerEnd ? Math.min(headerEnd + 1, text.length) : start;
    return from < text.length ? [{ from, to: text.length }] : [];
  }
  const ranges: Range[] = [];
  let lineStart = 0;
  for (const line of text.split('\n')) {
    LINE_MAGIC.lastIndex = 0;
    const m = LINE_MAGIC.exec(line);
    if (m) {
      const afterName = m.index + m[0].length;
      const from = skipOptions(line, afterName);
      if (from < line.length) {
        ranges.push({ from: lineStart + from, to: lineStart + line.length });
      }
    }
    lineStart += line.length + 1;
  }
  return ranges;
}

/** Where the magic's name is (`%%sql` or `%sql`), to style it as the SQL's label. */
export function magicRanges(text: string): Range[] {
  const cell = CELL_MAGIC.exec(text);
  if (cell) {
    const at = text.indexOf('%%sql');
    return [{ from: at, to: at + 5 }];
  }
  const out: Range[] = [];
  let lineStart = 0;
  for (const line of text.split('\n')) {
    LINE_MAGIC.lastIndex = 0;
    const m = LINE_MAGIC.exec(line);
    if (m) {
      const at = m.index + m[1].length;
      out.push({ from: lineStart + at, to: lineStart + at + 4 });
    }
    lineStart += line.length + 1;
  }
  return out;
}

const PARAMETER = /\{\{[\s\S]*?\}\}/g;

/**
 * `{{ … }}` parameters inside `range` of `text`, as the magic binds them: not inside
 * SQL strings, quoted names or comments.
 */
export function parameterRanges(text: string, range: Range): Range[] {
  const sql = text.slice(range.from, range.to);
  const out: Range[] = [];
  const masked = maskLiterals(sql);
  PARAMETER.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = PARAMETER.exec(masked)) !== null) {
    out.push({ from: range.from + m.index, to: range.from + m.index + m[0].length });
  }
  return out;
}

/** `sql` with strings, quoted names and comments blanked out (same length). */
function maskLiterals(sql: string): string {
  return sql.replace(
    /'(?:[^']|'')*'?|"(?:[^"]|"")*"?|--[^\n]*|\/\*[\s\S]*?(?:\*\/|$)/g,
    (literal) => ' '.repeat(literal.length)
  );
}
