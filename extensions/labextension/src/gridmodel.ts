/**
 * The result grid's pure logic (no DOM, no kernel): which rows a scroll position shows,
 * the cache of pages the kernel sent, sort cycling, copied text, column widths, and the
 * chart options a choice amounts to. `grid.ts` draws with it; jest tests it.
 */

/** Rows per page asked of the kernel. */
export const PAGE_ROWS = 200;
/** Pages kept in the browser at most (the oldest used is dropped first). */
export const CACHED_PAGES = 8;
/** Tallest scroll area the grid makes; more rows than fit are reached by scaling. */
export const MAX_SCROLL_PX = 8_000_000;
/** Most rows copied at once. */
export const MAX_COPY_ROWS = 10_000;

/** A cell as the kernel sends it: text, or null for a missing value. */
export type Cell = string | null;
export type Row = Cell[];

/** One sort key: the column's position and its direction. */
export interface ISort {
  column: number;
  descending: boolean;
}

/** What the grid asks the kernel for: the order and the filters (column → text). */
export interface IViewSpec {
  sort: ISort[];
  filters: Record<string, string>;
}

/** The height of the scroll area for `rows` rows of `rowHeight` pixels (capped). */
export function scrollHeight(rows: number, rowHeight: number, maxPx = MAX_SCROLL_PX): number {
  return Math.min(rows * rowHeight, maxPx);
}

/**
 * The first row shown at `scrollTop` of a scroll area that scrolls `maxScroll` pixels
 * (its scrollHeight less its clientHeight) with `visible` rows in view: the top shows the
 * first row, the bottom the last ones, in proportion between (past the height cap, one
 * pixel is several rows).
 */
export function firstRow(scrollTop: number, maxScroll: number, rows: number, visible: number): number {
  const last = Math.max(0, rows - visible);
  if (maxScroll <= 0) {
    return 0;
  }
  return Math.max(0, Math.min(last, Math.round((scrollTop / maxScroll) * last)));
}

/** The scroll position that shows `row` first (the inverse of {@link firstRow}). */
export function scrollTopFor(row: number, maxScroll: number, rows: number, visible: number): number {
  const last = Math.max(1, rows - visible);
  return (Math.min(Math.max(row, 0), last) / last) * Math.max(0, maxScroll);
}

/** The pages (by number) that hold rows `first` to `first + count - 1`. */
export function pagesFor(first: number, count: number, pageRows = PAGE_ROWS): number[] {
  if (count <= 0) {
    return [];
  }
  const out: number[] = [];
  for (let p = Math.floor(first / pageRows); p <= Math.floor((first + count - 1) / pageRows); p++) {
    out.push(p);
  }
  return out;
}

/** The sort after clicking a column's header: ascending, then descending, then none. */
export function nextSort(current: ISort[], column: number): ISort[] {
  const now = current.find(s => s.column === column);
  if (!now) {
    return [{ column, descending: false }];
  }
  return now.descending ? [] : [{ column, descending: true }];
}

/** The key of a view: pages of different views never mix. */
export function viewKey(spec: IViewSpec): string {
  const filters = Object.keys(spec.filters)
    .filter(k => spec.filters[k].trim() !== '')
    .sort()
    .map(k => [k, spec.filters[k]]);
  return JSON.stringify([spec.sort, filters]);
}

/**
 * The pages of one view the browser holds: at most `capacity`, the least recently used
 * dropped first, so scrolling through a million rows keeps memory flat.
 */
export class PageCache {
  constructor(
    readonly capacity = CACHED_PAGES,
    readonly pageRows = PAGE_ROWS
  ) {}

  private _pages = new Map<number, Row[]>();
  private _view = '';

  /** Forget everything when the view changes. */
  setView(key: string): void {
    if (key !== this._view) {
      this._view = key;
      this._pages.clear();
    }
  }

  get view(): string {
    return this._view;
  }

  get size(): number {
    return this._pages.size;
  }

  has(page: number): boolean {
    return this._pages.has(page);
  }

  /** Keep a page of `view` (ignored if the view changed since it was asked for). */
  put(view: string, page: number, rows: Row[]): void {
    if (view !== this._view) {
      return;
    }
    this._pages.delete(page);
    this._pages.set(page, rows);
    while (this._pages.size > this.capacity) {
      const oldest = this._pages.keys().next().value as number;
      this._pages.delete(oldest);
    }
  }

  /** Row `index` of the view, or undefined when its page is not here. */
  row(index: number): Row | undefined {
    const page = Math.floor(index / this.pageRows);
    const rows = this._pages.get(page);
    if (!rows) {
      return undefined;
    }
    // Mark it used.
    this._pages.delete(page);
    this._pages.set(page, rows);
    return rows[index - page * this.pageRows];
  }
}

/** A rectangle of selected cells (inclusive), from two corners in any order. */
export interface IRange {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

export function rangeOf(
  a: { row: number; column: number },
  b: { row: number; column: number }
): IRange {
  return {
    top: Math.min(a.row, b.row),
    bottom: Math.max(a.row, b.row),
    left: Math.min(a.column, b.column),
    right: Math.max(a.column, b.column)
  };
}

export function inRange(range: IRange | null, row: number, column: number): boolean {
  return (
    !!range &&
    row >= range.top &&
    row <= range.bottom &&
    column >= range.left &&
    column <= range.right
  );
}

function tsvCell(value: Cell): string {
  if (value === null) {
    return '';
  }
  // Tabs and line breaks would start a new cell or row: quote like spreadsheets do.
  return /[\t\n\r"]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Selected cells as tab-separated text, as spreadsheets paste it. */
export function toTsv(rows: Row[], range: IRange, header?: string[]): string {
  const lines: string[] = [];
  if (header) {
    lines.push(header.slice(range.left, range.right + 1).map(tsvCell).join('\t'));
  }
  for (const row of rows) {
    lines.push(row.slice(range.left, range.right + 1).map(tsvCell).join('\t'));
  }
  return lines.join('\n');
}

/** A column's new width while its edge is dragged (never narrower than `min`). */
export function resized(start: number, dx: number, min = 48): number {
  return Math.max(min, Math.round(start + dx));
}

/** A starting width for a column from its name and first values (characters × 8 px). */
export function initialWidth(name: string, values: Cell[]): number {
  const longest = Math.max(name.length + 2, ...values.map(v => (v ?? 'NULL').length));
  return Math.max(64, Math.min(320, longest * 8 + 16));
}

/** The chart builder's choice. */
export interface IChartChoice {
  kind: string;
  x: string | null;
  y: string[];
  color: string | null;
  agg: string | null;
}

/** Whether the kernel's answer to a chart request is for the line the cell still has. */
export function firstLine(source: string): string {
  const end = source.indexOf('\n');
  return end < 0 ? source : source.slice(0, end);
}

/** `source` with its first line replaced by `line`. */
export function withFirstLine(source: string, line: string): string {
  const end = source.indexOf('\n');
  return end < 0 ? line : line + source.slice(end);
}
