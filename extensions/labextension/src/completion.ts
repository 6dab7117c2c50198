/**
 * SQL completion in JupyterLab's list (pure, no editor or kernel): where the kernel is
 * asked, and how its ranked, typed answer becomes the list's items.
 *
 * The kernel completes SQL in `%%sql` cells and on `%sql` lines (its IPython matcher);
 * SQL in a Python string is asked for as a `%%sql` cell made of the string's content.
 * Its reply lists the candidates best first, with each one's kind (table, column,
 * function …) and detail (a column's Trino type, a function's signature) in the
 * `_jupyter_types_experimental` metadata. The list keeps that order (JupyterLab's own
 * model sorts alphabetically) and its type column shows a column's Trino type.
 *
 * Offsets in the kernel's messages count characters (code points), the editor's count
 * UTF-16 units: both are handled here.
 */
import { pythonSqlRanges } from './pystrings';
import { sqlRanges } from './regions';

/** A completion request for the kernel, and how to map its reply back to the cell. */
export interface SqlRequest {
  /** The code the kernel completes, and the cursor in it (characters). */
  code: string;
  cursor: number;
  /** The cell offset (characters) of a code offset (characters). */
  toCell: (offset: number) => number;
}

const HEADER = '%%sql\n';

/** The UTF-16 index of character `offset` in `text`. */
export function jsIndex(offset: number, text: string): number {
  let js = 0;
  for (let n = 0; n < offset && js < text.length; n++) {
    js += isHighSurrogate(text.charCodeAt(js)) ? 2 : 1;
  }
  return js;
}

/** The character index of UTF-16 index `index` in `text`. */
export function charIndex(index: number, text: string): number {
  let n = 0;
  for (let js = 0; js < index && js < text.length; n++) {
    js += isHighSurrogate(text.charCodeAt(js)) ? 2 : 1;
  }
  return n;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

/**
 * What to ask the kernel to complete SQL at character `offset` of a cell's `text`: the
 * cell itself when the cursor is in a `%%sql` body or after `%sql` (the kernel finds the
 * SQL and its options), a `%%sql` cell of a SQL string's content when it is in one;
 * null when the cursor is not in SQL.
 */
export function sqlRequest(text: string, offset: number): SqlRequest | null {
  const at = jsIndex(offset, text);
  if (sqlRanges(text).some(r => r.from <= at && at <= r.to)) {
    return { code: text, cursor: offset, toCell: o => o };
  }
  const string = pythonSqlRanges(text).find(r => r.from <= at && at <= r.to);
  if (!string) {
    return null;
  }
  const code = HEADER + text.slice(string.from, string.to);
  const shift = string.from - HEADER.length;
  return {
    code,
    cursor: charIndex(at - shift, code),
    toCell: o => charIndex(jsIndex(o, code) + shift, text)
  };
}

/** A kernel's `complete_reply` content (what is read of it). */
export interface CompleteReply {
  matches: string[];
  cursor_start: number;
  cursor_end: number;
  metadata?: {
    _jupyter_types_experimental?: { text?: string; type?: string; signature?: string }[];
  };
}

/** One item of the list: JupyterLab's completion item and what DataHub knows of it. */
export interface SqlCompletionItem {
  label: string;
  insertText: string;
  /** The kernel's kind (its monogram's letter and colour in the list). */
  type: string;
  /** What the list's type column shows (see `listType`). */
  shownType: string;
  documentation?: string;
  /** The kernel's order (0 is its best). */
  rank: number;
  /** The kernel's kind (table, column, function …) and detail (Trino type, signature). */
  kind: string;
  detail: string;
  /** What the kernel is asked to document the item: the code with it inserted. */
  inspect: { code: string; cursor: number };
}

/** The items of a kernel's reply to `request`, in the kernel's order, and the range of
 * the cell (characters) they replace. */
export function completionItems(
  reply: CompleteReply,
  request: SqlRequest
): { start: number; end: number; items: SqlCompletionItem[] } {
  const meta = reply.metadata?._jupyter_types_experimental ?? [];
  const before = request.code.slice(0, jsIndex(reply.cursor_start, request.code));
  const start = charIndex(before.length, request.code);
  const items = reply.matches.map((match, rank) => {
    const entry = meta[rank] ?? {};
    const text = entry.text ?? match;
    const kind = entry.type ?? '';
    const detail = entry.signature ?? '';
    const item: SqlCompletionItem = {
      label: match,
      insertText: text,
      type: kind,
      shownType: listType(kind, detail),
      rank,
      kind,
      detail,
      inspect: { code: before + text, cursor: start + charIndex(text.length, text) }
    };
    if (isTyped(kind) && detail && listType(kind, detail) !== detail) {
      item.documentation = detail; // the whole type of a long ROW (…) column
    }
    return item;
  });
  return {
    start: request.toCell(reply.cursor_start),
    end: request.toCell(reply.cursor_end),
    items
  };
}

/** Longest type shown in the list as it is (`timestamp(3) with time zone` fits);
 * longer ones are shortened. */
const TYPE_WIDTH = 28;

function isTyped(kind: string): boolean {
  return kind === 'column' || kind === 'field';
}

/** What the list shows as an item's type: a column's (or ROW field's) Trino type
 * (`bigint`, `varchar(25)`, `row(…)`), else its kind (`table`, `function` …). */
export function listType(kind: string, detail: string): string {
  if (!isTyped(kind) || !detail) {
    return kind;
  }
  if (detail.length <= TYPE_WIDTH) {
    return detail;
  }
  const open = detail.indexOf('(');
  if (detail.endsWith(')') && open > 0 && open < TYPE_WIDTH - 3) {
    return `${detail.slice(0, open)}(…)`; // row(…), array(…), map(…)
  }
  return `${detail.slice(0, TYPE_WIDTH - 1)}…`;
}

/**
 * The list's order once the user typed `query` after it opened: the kernel's items
 * first, those whose text starts with the query before the ones that only match it
 * loosely, each in the kernel's order; then other providers' items in their order.
 */
export function rankOrder<T extends { insertText?: string; label: string; rank?: number }>(
  items: readonly T[],
  query: string
): T[] {
  const q = query.toLowerCase();
  const key = (item: T): [number, number] => {
    if (item.rank === undefined) {
      return [2, 0];
    }
    const text = (item.insertText ?? item.label).replace(/^"/, '').toLowerCase();
    return [text.startsWith(q) ? 0 : 1, item.rank];
  };
  return items
    .map((item, index) => ({ item, index, key: key(item) }))
    .sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.index - b.index)
    .map(e => e.item);
}
