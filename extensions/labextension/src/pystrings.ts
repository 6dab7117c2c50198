/**
 * SQL inside Python strings (pure, no editor): which string literals of a Python cell
 * hold SQL, so they can be highlighted like a `%%sql` cell's body.
 *
 * A string is SQL when
 * - it is the first argument (or the `sql=` / `query=` argument) of a call whose name
 *   says so: `spark.sql("…")`, `cursor.execute("…")`, `pd.read_sql("…", conn)`,
 *   `read_sql_query`, `executemany`;
 * - it starts with the marker comment `--sql` (`"""--sql\nSELECT …"""`), the way to
 *   mark any other string;
 * - it is triple-quoted and starts with a statement keyword (`sql = """SELECT …"""`),
 *   or is a one-line string starting with an upper-case statement keyword followed by
 *   a space (`q = "SELECT * FROM t"`): prose rarely shouts `SELECT `.
 */
import { Range } from './regions';

/** Calls whose first argument is SQL. */
const SQL_CALLS = /(?:^|\.)(?:sql|execute|executemany|read_sql|read_sql_query|query)$/;
/** Keyword arguments that hold SQL. */
const SQL_KEYWORD_ARGS = new Set(['sql', 'query']);
const STATEMENT = /^\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|SHOW|DESCRIBE|EXPLAIN|USE|VALUES|TABLE|CALL|GRANT|REVOKE)\s/;
const STATEMENT_ANY_CASE = new RegExp(STATEMENT.source, 'i');
const MARKER = /^\s*--\s*sql\b/i;
const PREFIX = /[rRbBuUfF]{0,2}$/;
/** How far before a string its call is looked for (`pd.read_sql(\n    sql=` fits). */
const LOOK_BACK = 200;

/** One Python string literal: the range of its content (inside the quotes), how it
 * was written, and whether it is an f-string. */
export interface PyString extends Range {
  /** Where the literal starts (its prefix, then its quotes). */
  start: number;
  triple: boolean;
  fstring: boolean;
}

/** The string literals of Python source, in order, skipping comments. An unfinished
 * string runs to the end of its line (triple-quoted: of the text), as Python reads it
 * while the user is still typing. */
export function pythonStrings(text: string): PyString[] {
  const out: PyString[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '#') {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol + 1;
      continue;
    }
    if (ch !== '"' && ch !== "'") {
      i++;
      continue;
    }
    const prefix = PREFIX.exec(text.slice(Math.max(0, i - 2), i))?.[0] ?? '';
    // A prefix is only one when it is not the end of a longer name (`bar"…"` is no string).
    const before = text[i - prefix.length - 1] ?? '';
    const realPrefix = /[A-Za-z0-9_]/.test(before) ? '' : prefix;
    const triple = text.startsWith(ch.repeat(3), i);
    const quote = triple ? ch.repeat(3) : ch;
    const from = i + quote.length;
    let j = from;
    let to = -1;
    while (j < text.length) {
      const c = text[j];
      if (c === '\\' && j + 1 < text.length) {
        j += 2; // an escaped character (raw strings keep it, yet it cannot end them either)
        continue;
      }
      if (!triple && c === '\n') {
        break;
      }
      if (text.startsWith(quote, j)) {
        to = j;
        break;
      }
      j++;
    }
    const end = to < 0 ? j : to;
    out.push({
      start: i - realPrefix.length,
      from,
      to: end,
      triple,
      fstring: /[fF]/.test(realPrefix)
    });
    i = to < 0 ? end : to + quote.length;
  }
  return out;
}

/** Whether the string starting at *start* is the SQL argument of a call: the first
 * argument of `….sql(` and the like, or a `sql=` / `query=` keyword argument. */
function isSqlArgument(text: string, start: number): boolean {
  // A bounded look back: a cell with many strings is scanned on every key press.
  const before = text.slice(Math.max(0, start - LOOK_BACK), start).replace(/\s+$/, '');
  const keyword = /([A-Za-z_][A-Za-z0-9_]*)\s*=$/.exec(before);
  if (keyword && !before.endsWith('==') && SQL_KEYWORD_ARGS.has(keyword[1])) {
    return /[(,]\s*[A-Za-z_][A-Za-z0-9_]*\s*=$/.test(before);
  }
  if (!before.endsWith('(')) {
    return false;
  }
  const callee = /([A-Za-z_][A-Za-z0-9_.]*)\s*\($/.exec(before);
  return !!callee && SQL_CALLS.test(callee[1]);
}

/** Whether a string's content reads as SQL by itself (a marker or a statement start). */
function looksLikeSql(content: string, triple: boolean): boolean {
  if (MARKER.test(content)) {
    return true;
  }
  return triple ? STATEMENT_ANY_CASE.test(content) : STATEMENT.test(content);
}

/** The content ranges of a Python cell's strings that hold SQL (see the module's
 * comment). Cells that are a cell magic (`%%sql`, `%%bash` …) hold no Python. */
export function pythonSqlRanges(text: string): (Range & { fstring: boolean })[] {
  if (/^\s*%%/.test(text)) {
    return [];
  }
  return pythonStrings(text)
    .filter(s => s.to > s.from)
    .filter(s => isSqlArgument(text, s.start) || looksLikeSql(text.slice(s.from, s.to), s.triple))
    .map(s => ({ from: s.from, to: s.to, fstring: s.fstring }));
}

/** The `{expression}` pieces of an f-string's content (not the doubled `{{`), which
 * Python fills in: they are no SQL. */
export function fstringFields(text: string, range: Range): Range[] {
  const out: Range[] = [];
  let depth = 0;
  let open = -1;
  for (let i = range.from; i < range.to; i++) {
    const c = text[i];
    if (c === '{') {
      if (depth === 0 && text[i + 1] === '{') {
        i++;
        continue;
      }
      if (depth === 0) {
        open = i;
      }
      depth++;
    } else if (c === '}' && depth > 0) {
      depth--;
      if (depth === 0) {
        out.push({ from: open, to: i + 1 });
      }
    }
  }
  return out;
}
