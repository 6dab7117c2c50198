/**
 * The schema browser's model (pure: no DOM, no JupyterLab): routing groups → catalogs →
 * schemas → tables → columns (a ROW column's fields below it), loaded lazily from the
 * DataHub service's metadata API as the signed-in user, tables a page at a time; a
 * search of table and column names in one catalog; and the SQL names the actions write.
 */

/** Trino's reserved words: a name equal to one must be quoted (the kernel's list,
 * `_RESERVED` in extensions/completion.py; a unit test keeps them the same). */
export const RESERVED = [
  'ALTER', 'AND', 'AS', 'BETWEEN', 'BY', 'CASE', 'CAST', 'CONSTRAINT', 'CREATE', 'CROSS',
  'CUBE', 'CURRENT_CATALOG', 'CURRENT_DATE', 'CURRENT_PATH', 'CURRENT_ROLE',
  'CURRENT_SCHEMA', 'CURRENT_TIME', 'CURRENT_TIMESTAMP', 'CURRENT_USER', 'DEALLOCATE',
  'DELETE', 'DESCRIBE', 'DISTINCT', 'DROP', 'ELSE', 'END', 'ESCAPE', 'EXCEPT', 'EXECUTE',
  'EXISTS', 'EXTRACT', 'FALSE', 'FOR', 'FROM', 'FULL', 'GROUP', 'GROUPING', 'HAVING', 'IN',
  'INNER', 'INSERT', 'INTERSECT', 'INTO', 'IS', 'JOIN', 'JSON_ARRAY', 'JSON_EXISTS',
  'JSON_OBJECT', 'JSON_QUERY', 'JSON_TABLE', 'JSON_VALUE', 'LEFT', 'LIKE', 'LISTAGG',
  'LOCALTIME', 'LOCALTIMESTAMP', 'NATURAL', 'NORMALIZE', 'NOT', 'NULL', 'ON', 'OR', 'ORDER',
  'OUTER', 'PREPARE', 'RECURSIVE', 'RIGHT', 'ROLLUP', 'SELECT', 'SKIP', 'TABLE', 'THEN',
  'TRIM', 'TRUE', 'UESCAPE', 'UNION', 'UNNEST', 'USING', 'VALUES', 'WHEN', 'WHERE', 'WITH'
];
const RESERVED_SET = new Set(RESERVED);
const PLAIN = /^[a-z_][a-z0-9_]*$/;

/** *name* as SQL must write it: bare when a plain lowercase identifier that is no
 * reserved word, else in double quotes (inner quotes doubled). */
export function quoteName(name: string): string {
  if (PLAIN.test(name) && !RESERVED_SET.has(name.toUpperCase())) {
    return name;
  }
  return '"' + name.replace(/"/g, '""') + '"';
}

/** A dotted SQL name from its parts (`tpch.tiny."order"`). */
export function qualifiedName(parts: readonly string[]): string {
  return parts.map(quoteName).join('.');
}

export type NodeKind = 'group' | 'catalog' | 'schema' | 'table' | 'column';

/** One row of the tree. `path` is the SQL path: [catalog, schema, table, column,
 * field, …] (empty for a routing group). */
export interface SchemaNode {
  kind: NodeKind;
  name: string;
  /** The routing group the node's metadata was read through (`--cluster`). */
  group: string;
  path: string[];
  /** A column's type, a table's type, a routing group's clusters. */
  detail: string;
  comment: string;
  /** Loaded children; undefined until the node is first expanded. */
  children?: SchemaNode[];
  /** Where the next page of children starts (null: all loaded). */
  nextOffset: number | null;
  expanded: boolean;
  loading: boolean;
  /** The service's sentence when loading failed. */
  error: string;
}

/** What a node writes into a cell: a catalog, schema or table by its qualified name; a
 * column (or field) by its own path, as a select list names it. */
export function insertText(node: SchemaNode): string {
  if (node.kind === 'group') {
    return node.name;
  }
  if (node.kind === 'column') {
    return qualifiedName(node.path.slice(3));
  }
  return qualifiedName(node.path);
}

/** The cell "Preview 100 rows" adds below the active one. */
export function previewCell(node: SchemaNode, defaultGroup: string): string {
  const magic = node.group && node.group !== defaultGroup
    ? `%%sql --cluster ${node.group}` : '%%sql';
  return `${magic}\nSELECT * FROM ${qualifiedName(node.path.slice(0, 3))} LIMIT 100`;
}

/** A request to the metadata API: `<kind>?<query>`, relative to the server's
 * `datahub/api/metadata/`. */
export function metadataRequest(kind: string, params: Record<string, string | number>): string {
  const query = Object.entries(params)
    .filter(([, value]) => value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`)
    .join('&');
  return query ? `${kind}?${query}` : kind;
}

/** How many tables one request lists. */
export const PAGE_SIZE = 200;
/** How many search hits one request returns. */
export const SEARCH_PAGE = 50;

/** The metadata API as the model sees it: the decoded JSON answer, or an Error whose
 * message is the service's sentence. GET, except the refresh (POST). */
export type Fetch = (request: string, method?: 'GET' | 'POST') => Promise<Record<string, unknown>>;

function node(
  kind: NodeKind, name: string, group: string, path: string[], detail = '', comment = ''
): SchemaNode {
  return {
    kind, name, group, path, detail, comment,
    children: undefined, nextOffset: null, expanded: false, loading: false, error: ''
  };
}

interface ColumnEntry { name: string; type?: string; comment?: string; fields?: ColumnEntry[] }

function columnNode(entry: ColumnEntry, group: string, parent: string[]): SchemaNode {
  const path = [...parent, entry.name];
  const column = node('column', entry.name, group, path, entry.type ?? '', entry.comment ?? '');
  // A ROW column's fields are known with it: children without another request.
  column.children = (entry.fields ?? []).map(f => columnNode(f, group, path));
  return column;
}

/** Whether *node* can be expanded. */
export function isExpandable(n: SchemaNode): boolean {
  return n.kind !== 'column' || (n.children?.length ?? 0) > 0;
}

interface Hit { schema: string; table: string; type?: string; column?: string; column_type?: string }

/** The tree and the search, over the metadata API. */
export class SchemaModel {
  roots: SchemaNode[] = [];
  defaultGroup = '';
  /** The current search's hits (as table and column nodes) and where its next page
   * starts. */
  hits: SchemaNode[] = [];
  hitsNext: number | null = null;
  searchText = '';
  error = '';
  /** Whether the routing groups have been asked for and answered (or refused). */
  started = false;
  /** Whether a refresh is dropping the cached metadata (the tree is about to go). */
  refreshing = false;

  constructor(private fetch: Fetch) {}

  /** Load the routing groups (and open the default one). */
  async start(): Promise<void> {
    this.error = '';
    try {
      const answer = await this.fetch('routing-groups');
      const groups = (answer.routing_groups ?? []) as {
        name: string; clusters: string[]; default: boolean;
      }[];
      this.roots = groups.map(g => node('group', g.name, g.name, [], g.clusters.join(', ')));
      this.defaultGroup = groups.find(g => g.default)?.name ?? '';
    } catch (e) {
      this.error = (e as Error).message;
      return;
    } finally {
      this.started = true;
    }
    const first = this.roots.find(g => g.name === this.defaultGroup) ?? this.roots[0];
    if (first) {
      await this.expand(first);
    }
  }

  /** Drop the user's cached metadata in the service (new tables show at once, as
   * after `%sql refresh-completions`) and load the tree again from the top. */
  async refresh(): Promise<void> {
    this.error = '';
    this.refreshing = true; // the old tree is not to be clicked meanwhile
    try {
      await this.fetch('refresh', 'POST');
    } catch (e) {
      this.error = (e as Error).message;
      return;
    } finally {
      this.refreshing = false;
    }
    this.roots = [];
    this.hits = [];
    this.hitsNext = null;
    this.started = false;
    await this.start();
  }

  /** Expand *n*, loading its children the first time. */
  async expand(n: SchemaNode): Promise<void> {
    n.expanded = true;
    if (n.children === undefined) {
      await this.load(n, 0);
    }
  }

  collapse(n: SchemaNode): void {
    n.expanded = false;
  }

  /** The next page of *n*'s children. */
  async more(n: SchemaNode): Promise<void> {
    if (n.nextOffset !== null) {
      await this.load(n, n.nextOffset);
    }
  }

  private async load(n: SchemaNode, offset: number): Promise<void> {
    n.loading = true;
    n.error = '';
    try {
      const [request, key] = this.childRequest(n, offset);
      const answer = await this.fetch(request);
      const loaded = this.childrenOf(n, key, answer[key] as unknown[]);
      n.children = offset === 0 ? loaded : [...(n.children ?? []), ...loaded];
      const next = answer.next_offset;
      n.nextOffset = typeof next === 'number' ? next : null;
    } catch (e) {
      n.error = (e as Error).message;
      if (offset === 0) {
        n.children = undefined;
      }
    } finally {
      n.loading = false;
    }
  }

  private childRequest(n: SchemaNode, offset: number): [string, string] {
    const cluster = n.group;
    const [catalog, schema, table] = n.path;
    switch (n.kind) {
      case 'group':
        return [metadataRequest('catalogs', { cluster }), 'catalogs'];
      case 'catalog':
        return [metadataRequest('schemas', { catalog, cluster }), 'schemas'];
      case 'schema':
        return [
          metadataRequest('tables', { catalog, schema, offset, limit: PAGE_SIZE, cluster }),
          'tables'
        ];
      default:
        return [metadataRequest('describe', { catalog, schema, table, cluster }), 'describe'];
    }
  }

  private childrenOf(n: SchemaNode, key: string, items: unknown[]): SchemaNode[] {
    const group = n.group;
    switch (key) {
      case 'catalogs':
        return (items as string[]).map(c => node('catalog', c, group, [c]));
      case 'schemas':
        return (items as string[]).map(s => node('schema', s, group, [...n.path, s]));
      case 'tables':
        return (items as { name: string; type?: string; comment?: string }[]).map(t =>
          node('table', t.name, group, [...n.path, t.name], t.type ?? '', t.comment ?? '')
        );
      default:
        return (items as ColumnEntry[]).map(c => columnNode(c, group, n.path));
    }
  }

  /** The catalogs the search can look in: those loaded so far, with their group. */
  catalogs(): SchemaNode[] {
    return this.roots.flatMap(g => g.children ?? []);
  }

  /** Search *catalog* for tables and columns whose name contains *text* (a new search,
   * or the next page of the current one when *more*). */
  async search(catalog: SchemaNode, text: string, more = false): Promise<void> {
    const offset = more ? this.hitsNext ?? 0 : 0;
    if (!more) {
      this.searchText = text;
      this.hits = [];
      this.hitsNext = null;
    }
    this.error = '';
    if (!text) {
      return;
    }
    try {
      const answer = await this.fetch(metadataRequest('search', {
        catalog: catalog.name, text, offset, limit: SEARCH_PAGE, cluster: catalog.group
      }));
      if (text !== this.searchText) {
        return; // a newer search was typed meanwhile
      }
      const hits = (answer.search ?? []) as Hit[];
      const nodes = hits.map(h => {
        const table = [catalog.name, h.schema, h.table];
        return h.column === undefined
          ? node('table', h.table, catalog.group, table, h.type ?? '')
          : node('column', h.column, catalog.group, [...table, h.column], h.column_type ?? '');
      });
      nodes.forEach(n => {
        if (n.kind === 'column') {
          n.children = []; // a hit names one column; its fields show in the tree
        }
      });
      this.hits = [...this.hits, ...nodes];
      this.hitsNext = typeof answer.next_offset === 'number' ? answer.next_offset : null;
    } catch (e) {
      this.error = (e as Error).message;
    }
  }
}
