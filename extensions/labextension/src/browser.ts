/**
 * The schema browser side panel: the model's tree (schema.ts) as DOM, a debounced
 * search box over one catalog, and the node a context menu was opened on.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { Fetch, SchemaModel, SchemaNode, isExpandable } from './schema';

/** How long the search waits after the last key press before asking the service. */
const SEARCH_DELAY_MS = 300;

/** The metadata API through the user's server (datahub.extensions.server_proxy), which
 * asks the DataHub service with the server's hub token. */
export function serverFetch(settings: ServerConnection.ISettings): Fetch {
  return async (request: string, method = 'GET') => {
    const url = URLExt.join(settings.baseUrl, 'datahub/api/metadata', request);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, { method }, settings);
    } catch {
      throw new Error('Your Jupyter server could not be reached; try again.');
    }
    let body: Record<string, unknown> = {};
    try {
      body = await response.json();
    } catch {
      // no JSON: the status says it below
    }
    if (!response.ok) {
      const message = typeof body.message === 'string' ? body.message : '';
      throw new Error(message || `The DataHub service answered HTTP ${response.status}.`);
    }
    return body;
  };
}

export class SchemaBrowser extends Widget {
  readonly model: SchemaModel;
  private tree: HTMLUListElement;
  private message: HTMLDivElement;
  private input: HTMLInputElement;
  private catalogSelect: HTMLSelectElement;
  private rendered: SchemaNode[] = [];
  private started = false;
  private timer: number | undefined;

  constructor(fetch: Fetch) {
    super();
    this.model = new SchemaModel(fetch);
    this.addClass('jp-DataHub-schemaBrowser');
    const search = document.createElement('div');
    search.className = 'jp-DataHub-schemaSearch';
    this.input = document.createElement('input');
    this.input.type = 'search';
    this.input.placeholder = 'Search tables and columns';
    this.input.setAttribute('aria-label', 'Search tables and columns');
    this.catalogSelect = document.createElement('select');
    this.catalogSelect.setAttribute('aria-label', 'Catalog to search');
    const refresh = document.createElement('button');
    refresh.className = 'jp-DataHub-schemaRefresh jp-mod-styled';
    refresh.textContent = '⟳';
    refresh.title = 'Refresh: read what Trino shows you again (new tables appear)';
    refresh.setAttribute('aria-label', 'Refresh the schema browser');
    refresh.addEventListener('click', () => void this.refresh());
    search.append(this.input, this.catalogSelect, refresh);
    this.message = document.createElement('div');
    this.message.className = 'jp-DataHub-schemaMessage';
    this.tree = document.createElement('ul');
    this.tree.className = 'jp-DataHub-schemaTree';
    this.tree.setAttribute('role', 'tree');
    this.node.append(search, this.message, this.tree);
    this.input.addEventListener('input', () => this.searchSoon());
    this.catalogSelect.addEventListener('change', () => this.searchSoon());
    this.tree.addEventListener('click', event => void this.onClick(event));
  }

  /** The node of a row element (for the context menu's commands). */
  nodeOf(element: Element | null): SchemaNode | undefined {
    const row = element?.closest('.jp-DataHub-schemaRow') as HTMLElement | null;
    const index = row?.dataset.index;
    return index === undefined ? undefined : this.rendered[Number(index)];
  }

  protected onAfterShow(): void {
    if (!this.started) {
      this.started = true;
      void this.model.start().then(() => this.render());
      this.render();
    }
  }

  private async refresh(): Promise<void> {
    this.input.value = '';
    const refreshing = this.model.refresh();
    this.render(); // shows "Loading…"
    await refreshing;
    this.render();
  }

  private searchSoon(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.runSearch(false), SEARCH_DELAY_MS);
  }

  private async runSearch(more: boolean): Promise<void> {
    const catalog = this.model.catalogs()[Number(this.catalogSelect.value)];
    const text = this.input.value.trim();
    if (catalog === undefined) {
      this.model.hits = [];
      this.model.searchText = text;
    } else {
      await this.model.search(catalog, text, more);
    }
    this.render();
  }

  private async onClick(event: MouseEvent): Promise<void> {
    const target = event.target as Element;
    if (target.closest('.jp-DataHub-schemaMore')) {
      const owner = this.nodeOf(target.closest('li')?.parentElement?.closest('li') ?? null);
      if (owner) {
        await this.model.more(owner);
      } else {
        await this.runSearch(true);
      }
      this.render();
      return;
    }
    const node = this.nodeOf(target);
    if (!node || !isExpandable(node)) {
      return;
    }
    if (node.expanded) {
      this.model.collapse(node);
      this.render();
    } else {
      const loading = this.model.expand(node);
      this.render(); // shows "Loading…"
      await loading;
      this.render();
    }
  }

  /** Draw the model: the search's hits while there is search text, else the tree. */
  render(): void {
    this.rendered = [];
    this.updateCatalogs();
    const searching = this.input.value.trim() !== '';
    const loading = !this.model.started || this.model.refreshing;
    this.message.textContent = this.model.error || (
      loading ? 'Loading…'
        : !this.model.roots.length ? 'Your quota policy lets you use no routing group.' : ''
    );
    this.message.classList.toggle('jp-mod-error', !!this.model.error);
    const items = searching ? this.model.hits : loading ? [] : this.model.roots;
    const list = this.nodes(items, 1);
    if (searching) {
      if (this.model.catalogs().length === 0) {
        list.push(this.note('Open a routing group to search its catalogs.'));
      } else if (this.model.searchText && !items.length && !this.model.error) {
        list.push(this.note('No table or column name contains this text.'));
      }
      if (this.model.hitsNext !== null) {
        list.push(this.moreButton('More results'));
      }
    }
    this.tree.replaceChildren(...list);
  }

  private updateCatalogs(): void {
    const catalogs = this.model.catalogs();
    const groups = new Set(catalogs.map(c => c.group));
    const labels = catalogs.map(c => (groups.size > 1 ? `${c.group}: ${c.name}` : c.name));
    const current = Array.from(this.catalogSelect.options).map(o => o.text);
    if (current.join('\n') === labels.join('\n')) {
      return;
    }
    const selected = this.catalogSelect.selectedOptions[0]?.text;
    this.catalogSelect.replaceChildren(...labels.map((label, i) => {
      const option = document.createElement('option');
      option.value = String(i);
      option.text = label;
      option.selected = label === selected;
      return option;
    }));
  }

  private nodes(items: SchemaNode[], level: number): HTMLLIElement[] {
    return items.map(n => this.item(n, level));
  }

  private item(n: SchemaNode, level: number): HTMLLIElement {
    const li = document.createElement('li');
    li.setAttribute('role', 'treeitem');
    li.setAttribute('aria-level', String(level));
    li.className = 'jp-DataHub-schemaNode';
    li.dataset.kind = n.kind;
    const row = document.createElement('div');
    row.className = 'jp-DataHub-schemaRow';
    row.dataset.index = String(this.rendered.push(n) - 1);
    row.style.paddingLeft = `${(level - 1) * 12 + 4}px`;
    const caret = document.createElement('span');
    caret.className = 'jp-DataHub-schemaCaret';
    if (isExpandable(n)) {
      li.setAttribute('aria-expanded', String(n.expanded));
      caret.textContent = n.expanded ? '▾' : '▸';
    }
    const name = document.createElement('span');
    name.className = 'jp-DataHub-schemaName';
    // A search's hit says where it is (schema.table, schema.table.column).
    name.textContent = level === 1 && n.kind !== 'group' ? n.path.slice(1).join('.') : n.name;
    const detail = document.createElement('span');
    detail.className = 'jp-DataHub-schemaDetail';
    detail.textContent = n.detail;
    row.append(caret, name, detail);
    row.title = [n.path.join('.') || n.name, n.detail, n.comment].filter(Boolean).join('\n');
    li.append(row);
    if (n.comment) {
      const comment = document.createElement('div');
      comment.className = 'jp-DataHub-schemaComment';
      comment.style.paddingLeft = `${(level - 1) * 12 + 20}px`;
      comment.textContent = n.comment;
      li.append(comment);
    }
    if (n.expanded) {
      const group = document.createElement('ul');
      group.setAttribute('role', 'group');
      const children = this.nodes(n.children ?? [], level + 1);
      if (n.loading) {
        children.push(this.note('Loading…', level + 1));
      } else if (n.error) {
        children.push(this.note(n.error, level + 1, true));
      } else if (n.children && !n.children.length) {
        children.push(this.note('Nothing here that you may see.', level + 1));
      }
      if (n.nextOffset !== null && !n.loading) {
        children.push(this.moreButton('More tables', level + 1));
      }
      group.append(...children);
      li.append(group);
    }
    return li;
  }

  private note(text: string, level = 1, error = false): HTMLLIElement {
    const li = document.createElement('li');
    li.className = 'jp-DataHub-schemaNote' + (error ? ' jp-mod-error' : '');
    li.style.paddingLeft = `${(level - 1) * 12 + 20}px`;
    li.textContent = text;
    return li;
  }

  private moreButton(label: string, level = 1): HTMLLIElement {
    const li = document.createElement('li');
    li.style.paddingLeft = `${(level - 1) * 12 + 20}px`;
    const button = document.createElement('button');
    button.className = 'jp-DataHub-schemaMore jp-mod-styled';
    button.textContent = label;
    li.append(button);
    return li;
  }
}
