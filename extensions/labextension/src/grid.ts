/**
 * The result grid: a `%%sql` result (MIME type `application/vnd.datahub.grid+json`) as a
 * virtualised table. Only the rows in view exist in the page; they come from the kernel
 * a page at a time (`gridcomm.ts`), sorted and filtered there on the DataFrame. Columns
 * resize by dragging their edge; selected cells copy as tab-separated text; the whole
 * (sorted, filtered) result downloads as CSV or Parquet in chunks.
 *
 * Without a kernel that still holds the result (a notebook opened later, a restarted
 * kernel) the grid shows the first rows the output carries and says so: it never fetches
 * anything else.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { GridConnections, GridComm, GridRequestError } from './gridcomm';
import {
  Cell,
  IRange,
  ISort,
  IViewSpec,
  MAX_COPY_ROWS,
  PAGE_ROWS,
  PageCache,
  Row,
  firstRow,
  inRange,
  initialWidth,
  nextSort,
  pagesFor,
  rangeOf,
  resized,
  scrollHeight,
  toTsv,
  viewKey
} from './gridmodel';

export const GRID_MIMETYPE = 'application/vnd.datahub.grid+json';
/** Pixel height of a row, of the header and of the filter row (the CSS agrees). */
const ROW_PX = 24;
const HEAD_PX = 52;
/** Rows in view at most. */
const VISIBLE_ROWS = 12;
/** Most rows one copy request asks the kernel for. */
const COPY_PAGE = 2000;

export interface IGridColumn {
  name: string;
  type: string;
  kind: string;
}

export interface IGridPayload {
  result: string;
  columns: IGridColumn[];
  rows: number;
  first: Row[];
  footer?: string;
}

/** What a renderer of one notebook needs: its panel and the kernel connections. */
export interface IGridContext {
  panel: NotebookPanel;
  connections: GridConnections;
  /** Draw a chart of result `rid` into the cell holding `node` (the chart builder). */
  chart: (node: HTMLElement, rid: string) => Promise<void>;
}

export function gridComm(context: IGridContext): GridComm | null {
  return context.connections.get(context.panel.sessionContext.session?.kernel);
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

function bytes(n: number): string {
  return n < 1024 * 1024 ? `${Math.ceil(n / 1024)} KB` : `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** The grid renderer of one output. */
export class GridRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    readonly options: IRenderMime.IRendererOptions,
    readonly context: IGridContext
  ) {
    super();
    this.addClass('jp-DataHub-grid');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const payload = model.data[GRID_MIMETYPE] as unknown as IGridPayload;
    if (this._payload && this._payload.result === payload.result) {
      return; // the same result: keep the scroll position, sort and filters
    }
    this._payload = payload;
    this._cache = new PageCache();
    this._cache.setView(viewKey(this._spec));
    this._cache.put(this._cache.view, 0, payload.first.slice(0, PAGE_ROWS));
    // Sort, filter, downloads and charts are the kernel's, whatever the row count.
    this._live = !!gridComm(this.context);
    this._total = this._live ? payload.rows : payload.first.length;
    this._widths = payload.columns.map((c, i) =>
      initialWidth(c.name, payload.first.slice(0, 20).map(r => r[i]))
    );
    this._build();
    if (!this._live && payload.rows > payload.first.length) {
      this._setStatus(
        `Showing the first ${plural(payload.first.length, 'row')} of ${payload.rows.toLocaleString('en-US')}; run the cell to browse them all.`
      );
    }
    this._draw();
  }

  /** The view the grid shows: sort and filters. */
  get spec(): IViewSpec {
    return this._spec;
  }

  // ----------------------------------------------------------------- building

  private _build(): void {
    const payload = this._payload!;
    this.node.textContent = '';
    const bar = el('div', 'jp-DataHub-gridBar');
    this._count = el('span', 'jp-DataHub-gridCount');
    this._status = el('span', 'jp-DataHub-gridStatus');
    this._status.setAttribute('role', 'status');
    bar.append(this._count, this._status);
    const button = (label: string, title: string, act: () => void): HTMLButtonElement => {
      const b = el('button', 'jp-DataHub-gridButton jp-mod-styled', label);
      b.title = title;
      b.disabled = !this._live;
      b.addEventListener('click', act);
      bar.append(b);
      return b;
    };
    this._buttons = [
      button('Chart', 'Draw a chart of this result and choose its kind, x, y and colour', () =>
        void this._chart()
      ),
      button('CSV', 'Download the result (sorted and filtered as shown) as CSV', () =>
        void this._download('csv')
      ),
      button('Parquet', 'Download the result (sorted and filtered as shown) as Parquet', () =>
        void this._download('parquet')
      )
    ];
    this._scroll = el('div', 'jp-DataHub-gridScroll');
    this._scroll.tabIndex = 0;
    this._scroll.setAttribute('role', 'grid');
    this._scroll.setAttribute('aria-rowcount', String(this._total));
    this._window = el('div', 'jp-DataHub-gridWindow');
    this._head = el('div', 'jp-DataHub-gridRow jp-DataHub-gridHead');
    this._filters = el('div', 'jp-DataHub-gridRow jp-DataHub-gridFilters');
    this._body = el('div', 'jp-DataHub-gridBody');
    payload.columns.forEach((column, i) => {
      const head = el('div', 'jp-DataHub-gridHeadCell');
      head.setAttribute('role', 'columnheader');
      head.title = `${column.name} (${column.type}): click to sort`;
      const name = el('span', 'jp-DataHub-gridName', column.name);
      const mark = el('span', 'jp-DataHub-gridSortMark');
      const grip = el('span', 'jp-DataHub-gridResize');
      grip.title = 'Drag to resize';
      head.append(name, mark, grip);
      head.addEventListener('click', event => {
        if (event.target !== grip && this._live) {
          this._setView({ ...this._spec, sort: nextSort(this._spec.sort, i) });
        }
      });
      grip.addEventListener('pointerdown', event => this._startResize(event, i, grip));
      this._head.append(head);
      const filter = el('input', 'jp-DataHub-gridFilter');
      filter.type = 'search';
      filter.placeholder = column.kind === 'number' || column.kind === 'time' ? '>, <, a..b' : 'contains';
      filter.setAttribute('aria-label', `Filter ${column.name}`);
      filter.disabled = !this._live;
      filter.addEventListener('input', () => {
        // Typing in several filters within the pause applies them all at once.
        this._typed[String(i)] = filter.value;
        window.clearTimeout(this._filterTimer);
        this._filterTimer = window.setTimeout(() => {
          this._setView({ ...this._spec, filters: { ...this._typed } });
        }, 350);
      });
      this._filters.append(filter);
    });
    this._window.append(this._head, this._filters, this._body);
    this._spacer = el('div', 'jp-DataHub-gridSpacer');
    this._scroll.append(this._window, this._spacer);
    this._scroll.addEventListener('scroll', () => this._schedule());
    this._scroll.addEventListener('keydown', event => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'c') {
        event.preventDefault();
        event.stopPropagation();
        void this._copy();
      }
    });
    this._body.addEventListener('mousedown', event => this._select(event));
    const footer = el('div', 'jp-DataHub-gridFooter', payload.footer ?? '');
    this.node.append(bar, this._scroll, footer);
    this._applyWidths();
  }

  private _applyWidths(): void {
    const template = this._widths.map(w => `${w}px`).join(' ');
    this._window.style.setProperty('--jp-datahub-grid-columns', template);
    this._window.style.width = `${this._widths.reduce((a, b) => a + b, 0)}px`;
  }

  private _startResize(event: PointerEvent, column: number, grip: HTMLElement): void {
    event.preventDefault();
    event.stopPropagation();
    const start = this._widths[column];
    const x0 = event.clientX;
    grip.setPointerCapture(event.pointerId);
    const move = (e: PointerEvent) => {
      this._widths[column] = resized(start, e.clientX - x0);
      this._applyWidths();
    };
    const up = () => {
      grip.removeEventListener('pointermove', move);
      grip.removeEventListener('pointerup', up);
    };
    grip.addEventListener('pointermove', move);
    grip.addEventListener('pointerup', up);
  }

  // ----------------------------------------------------------------- drawing

  private _visible(): number {
    return Math.max(1, Math.min(this._total, VISIBLE_ROWS));
  }

  private _schedule(): void {
    if (!this._frame) {
      this._frame = window.requestAnimationFrame(() => {
        this._frame = 0;
        this._draw();
      });
    }
  }

  private _draw(): void {
    const payload = this._payload!;
    const visible = this._visible();
    const viewport = visible * ROW_PX;
    this._scroll.style.height = `${HEAD_PX + viewport + 18}px`;
    this._spacer.style.height = `${Math.max(0, scrollHeight(this._total, ROW_PX) - viewport)}px`;
    this._scroll.setAttribute('aria-rowcount', String(this._total));
    const maxScroll = this._scroll.scrollHeight - this._scroll.clientHeight;
    const first = firstRow(this._scroll.scrollTop, maxScroll, this._total, visible);
    const count = Math.min(visible, this._total - first);
    const shown = this._total === payload.rows || !this._live
      ? plural(payload.rows, 'row')
      : `${this._total.toLocaleString('en-US')} of ${plural(payload.rows, 'row')}`;
    this._count.textContent = shown;
    const rows: HTMLElement[] = [];
    const missing = new Set<number>();
    for (let i = first; i < first + count; i++) {
      const values = this._cache.row(i);
      const row = el('div', 'jp-DataHub-gridRow jp-DataHub-gridDataRow');
      row.setAttribute('role', 'row');
      row.setAttribute('aria-rowindex', String(i + 1));
      row.dataset.row = String(i);
      if (!values) {
        missing.add(Math.floor(i / PAGE_ROWS));
      }
      payload.columns.forEach((column, c) => {
        const value: Cell | undefined = values ? values[c] : undefined;
        const cell = el('div', 'jp-DataHub-gridCell');
        cell.setAttribute('role', 'gridcell');
        cell.dataset.column = String(c);
        if (column.kind === 'number') {
          cell.classList.add('jp-mod-number');
        }
        if (value === undefined) {
          cell.classList.add('jp-mod-loading');
          cell.textContent = '…';
        } else if (value === null) {
          cell.classList.add('jp-mod-null');
          cell.textContent = 'NULL';
        } else {
          cell.textContent = value;
          cell.title = value.length > 40 ? value : '';
        }
        if (inRange(this._selection, i, c)) {
          cell.classList.add('jp-mod-selected');
        }
        row.append(cell);
      });
      rows.push(row);
    }
    this._body.replaceChildren(...rows);
    this._head.querySelectorAll('.jp-DataHub-gridSortMark').forEach((mark, c) => {
      const sort = this._spec.sort.find(s => s.column === c);
      mark.textContent = sort ? (sort.descending ? ' ▼' : ' ▲') : '';
      mark.parentElement?.setAttribute(
        'aria-sort',
        sort ? (sort.descending ? 'descending' : 'ascending') : 'none'
      );
    });
    if (this._live) {
      for (const page of pagesFor(first, count)) {
        if (missing.has(page)) {
          void this._fetch(page);
        }
      }
    }
  }

  private async _fetch(page: number): Promise<void> {
    const view = this._cache.view;
    const key = `${view}#${page}`;
    const comm = gridComm(this.context);
    if (this._inflight.has(key) || !comm) {
      return;
    }
    this._inflight.add(key);
    try {
      const answer = await comm.request({
        op: 'page',
        result: this._payload!.result,
        offset: page * PAGE_ROWS,
        limit: PAGE_ROWS,
        sort: this._spec.sort as unknown as never,
        filters: this._spec.filters
      });
      if (view !== this._cache.view) {
        return;
      }
      this._cache.put(view, page, answer.rows as Row[]);
      const total = Number(answer.total);
      if (total !== this._total) {
        this._total = total;
      }
      this._setStatus('');
      this._schedule();
    } catch (error) {
      this._failed(error);
    } finally {
      this._inflight.delete(key);
    }
  }

  private _failed(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (error instanceof GridRequestError && /no longer in the kernel|kernel is gone/.test(message)) {
      // Static from now on: the first rows the output carries.
      const payload = this._payload!;
      this._live = false;
      this._spec = { sort: [], filters: {} };
      this._cache = new PageCache();
      this._cache.setView(viewKey(this._spec));
      this._cache.put(this._cache.view, 0, payload.first.slice(0, PAGE_ROWS));
      this._total = payload.first.length;
      this._buttons.forEach(b => (b.disabled = true));
      this._filters.querySelectorAll('input').forEach(i => (i.disabled = true));
      this._schedule();
    }
    this._setStatus(message, true);
  }

  private _setView(spec: IViewSpec): void {
    this._spec = spec;
    this._selection = null;
    this._cache.setView(viewKey(spec));
    this._scroll.scrollTop = 0;
    this._setStatus('Loading…');
    this._schedule();
  }

  private _setStatus(text: string, error = false): void {
    this._status.textContent = text;
    this._status.classList.toggle('jp-mod-error', error);
  }

  // ----------------------------------------------------------------- selection, copy

  private _select(event: MouseEvent): void {
    const cell = (event.target as HTMLElement).closest('.jp-DataHub-gridCell') as HTMLElement | null;
    const row = cell?.parentElement as HTMLElement | null;
    if (!cell || !row) {
      return;
    }
    const at = { row: Number(row.dataset.row), column: Number(cell.dataset.column) };
    if (event.shiftKey && this._anchor) {
      event.preventDefault();
    } else {
      this._anchor = at;
    }
    this._selection = rangeOf(this._anchor!, at);
    this._scroll.focus({ preventScroll: true });
    this._schedule();
  }

  private async _copy(): Promise<void> {
    const range = this._selection;
    if (!range) {
      return;
    }
    const last = Math.min(range.bottom, range.top + MAX_COPY_ROWS - 1);
    const rows: Row[] = [];
    try {
      for (let start = range.top; start <= last; start += COPY_PAGE) {
        const count = Math.min(COPY_PAGE, last - start + 1);
        rows.push(...(await this._rows(start, count)));
      }
      const clipped: IRange = { ...range, bottom: last };
      await navigator.clipboard.writeText(toTsv(rows, clipped));
      const cells = (last - range.top + 1) * (range.right - range.left + 1);
      this._setStatus(
        `Copied ${plural(cells, 'cell')}` +
          (last < range.bottom ? ` (the first ${MAX_COPY_ROWS.toLocaleString('en-US')} rows)` : '')
      );
    } catch (error) {
      this._setStatus(error instanceof Error ? error.message : String(error), true);
    }
  }

  private async _rows(start: number, count: number): Promise<Row[]> {
    const cached: Row[] = [];
    for (let i = start; i < start + count; i++) {
      const row = this._cache.row(i);
      if (!row) {
        break;
      }
      cached.push(row);
    }
    if (cached.length === count) {
      return cached;
    }
    const comm = gridComm(this.context);
    if (!comm || !this._live) {
      return cached;
    }
    const answer = await comm.request({
      op: 'page',
      result: this._payload!.result,
      offset: start,
      limit: count,
      sort: this._spec.sort as unknown as never,
      filters: this._spec.filters
    });
    return answer.rows as Row[];
  }

  // ----------------------------------------------------------------- downloads, chart

  private async _download(format: 'csv' | 'parquet'): Promise<void> {
    const comm = gridComm(this.context);
    if (!comm) {
      this._setStatus('This notebook has no kernel; run the cell again.', true);
      return;
    }
    this._setStatus(`Preparing ${format === 'csv' ? 'CSV' : 'Parquet'}…`);
    try {
      const { blob, name } = await comm.download({
        result: this._payload!.result,
        format,
        sort: this._spec.sort as unknown as never,
        filters: this._spec.filters
      });
      const url = URL.createObjectURL(blob);
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
      this._setStatus(`Downloaded ${name} (${bytes(blob.size)})`);
    } catch (error) {
      this._failed(error);
    }
  }

  private async _chart(): Promise<void> {
    try {
      await this.context.chart(this.node, this._payload!.result);
    } catch (error) {
      this._failed(error);
    }
  }

  private _payload: IGridPayload | null = null;
  private _spec: IViewSpec = { sort: [] as ISort[], filters: {} };
  private _cache = new PageCache();
  private _inflight = new Set<string>();
  private _live = false;
  private _total = 0;
  private _widths: number[] = [];
  private _selection: IRange | null = null;
  private _anchor: { row: number; column: number } | null = null;
  private _frame = 0;
  private _filterTimer = 0;
  private _typed: Record<string, string> = {};
  private _buttons: HTMLButtonElement[] = [];
  private _count!: HTMLElement;
  private _status!: HTMLElement;
  private _scroll!: HTMLDivElement;
  private _window!: HTMLDivElement;
  private _head!: HTMLDivElement;
  private _filters!: HTMLDivElement;
  private _body!: HTMLDivElement;
  private _spacer!: HTMLDivElement;
}
