import {
  PAGE_SIZE,
  SchemaModel,
  SchemaNode,
  insertText,
  isExpandable,
  metadataRequest,
  previewCell,
  qualifiedName,
  quoteName
} from '../src/schema';

/** A metadata API over fixed answers, recording the requests it was asked. */
function fakeApi(answers: Record<string, unknown>) {
  const requests: string[] = [];
  const fetch = async (request: string, method = 'GET') => {
    requests.push(method === 'GET' ? request : `${method} ${request}`);
    const path = request.split('?')[0];
    const answer = answers[request] ?? answers[path];
    if (answer instanceof Error) {
      throw answer;
    }
    if (answer === undefined) {
      throw new Error(`no answer for ${request}`);
    }
    return typeof answer === 'function' ? answer(request) : answer;
  };
  return { fetch, requests };
}

const tables = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ name: `t${String(i).padStart(4, '0')}`, type: 'BASE TABLE' }));

/** The tables API paging like the service: offset and limit from the request. */
function pagedTables(all: { name: string; type: string; comment?: string }[]) {
  return (request: string) => {
    const params = new URLSearchParams(request.split('?')[1]);
    const offset = Number(params.get('offset'));
    const limit = Number(params.get('limit'));
    const page = all.slice(offset, offset + limit);
    const end = offset + page.length;
    return { tables: page, total: all.length, next_offset: end < all.length ? end : null };
  };
}

const GROUPS = {
  routing_groups: [
    { name: 'adhoc', clusters: ['trino-2'], default: false },
    { name: 'default', clusters: ['trino-1', 'trino-3'], default: true }
  ]
};

describe('quoting', () => {
  it('leaves plain lowercase names bare and quotes everything else', () => {
    expect(quoteName('orders')).toBe('orders');
    expect(quoteName('_x1')).toBe('_x1');
    expect(quoteName('Orders')).toBe('"Orders"');
    expect(quoteName('my table')).toBe('"my table"');
    expect(quoteName('1st')).toBe('"1st"');
    expect(quoteName('a"b')).toBe('"a""b"');
    expect(quoteName('')).toBe('""');
  });

  it('quotes reserved words, whatever their case', () => {
    expect(quoteName('order')).toBe('"order"');
    expect(quoteName('select')).toBe('"select"');
    expect(quoteName('table')).toBe('"table"');
    // Non-reserved keywords are plain names in Trino.
    expect(quoteName('comment')).toBe('comment');
  });

  it('joins qualified names part by part', () => {
    expect(qualifiedName(['tpch', 'tiny', 'order'])).toBe('tpch.tiny."order"');
    expect(qualifiedName(['memory', 'default', 'Sales 2024'])).toBe('memory.default."Sales 2024"');
  });
});

const node = (kind: SchemaNode['kind'], path: string[], group = 'default'): SchemaNode => ({
  kind, name: path[path.length - 1] ?? group, group, path, detail: '', comment: '',
  children: undefined, nextOffset: null, expanded: false, loading: false, error: ''
});

describe('actions', () => {
  it('inserts tables by their qualified name and columns by their own path', () => {
    expect(insertText(node('table', ['tpch', 'tiny', 'order']))).toBe('tpch.tiny."order"');
    expect(insertText(node('schema', ['tpch', 'tiny']))).toBe('tpch.tiny');
    expect(insertText(node('column', ['m', 'd', 't', 'address', 'Zip Code']))).toBe(
      'address."Zip Code"'
    );
  });

  it('previews a table (or a column\'s table), naming a routing group other than the default', () => {
    expect(previewCell(node('table', ['tpch', 'tiny', 'order']), 'default')).toBe(
      '%%sql\nSELECT * FROM tpch.tiny."order" LIMIT 100'
    );
    expect(previewCell(node('column', ['m', 'x y', 't', 'c'], 'adhoc'), 'default')).toBe(
      '%%sql --cluster adhoc\nSELECT * FROM m."x y".t LIMIT 100'
    );
  });

  it('encodes request parameters and leaves out empty ones', () => {
    expect(metadataRequest('tables', { catalog: 'a&b', schema: 'c d', cluster: '' })).toBe(
      'tables?catalog=a%26b&schema=c%20d'
    );
    expect(metadataRequest('routing-groups', {})).toBe('routing-groups');
  });
});

describe('SchemaModel', () => {
  it('starts with the routing groups and opens the default one', async () => {
    const api = fakeApi({
      'routing-groups': GROUPS,
      'catalogs?cluster=default': { catalogs: ['memory', 'tpch'] }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    expect(model.roots.map(g => [g.name, g.detail])).toEqual([
      ['adhoc', 'trino-2'],
      ['default', 'trino-1, trino-3']
    ]);
    expect(model.defaultGroup).toBe('default');
    expect(model.roots[1].expanded).toBe(true);
    expect(model.roots[0].children).toBeUndefined(); // not asked until opened
    expect(model.catalogs().map(c => c.path)).toEqual([['memory'], ['tpch']]);
    expect(api.requests).toEqual(['routing-groups', 'catalogs?cluster=default']);
  });

  it('loads each level once, on first expand, through the node\'s routing group', async () => {
    const api = fakeApi({
      'routing-groups': GROUPS,
      catalogs: { catalogs: ['tpch'] },
      schemas: { schemas: ['tiny'] },
      tables: pagedTables([{ name: 'orders', type: 'BASE TABLE', comment: 'One per order' }]),
      describe: {
        describe: [
          { name: 'orderkey', type: 'bigint', comment: 'the key' },
          {
            name: 'address', type: 'row(street varchar)',
            fields: [{ name: 'street', type: 'varchar' }]
          }
        ]
      }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    const adhoc = model.roots[0];
    await model.expand(adhoc);
    const tpch = adhoc.children![0];
    await model.expand(tpch);
    const tiny = tpch.children![0];
    await model.expand(tiny);
    const orders = tiny.children![0];
    expect([orders.detail, orders.comment]).toEqual(['BASE TABLE', 'One per order']);
    await model.expand(orders);
    const [orderkey, address] = orders.children!;
    expect([orderkey.detail, orderkey.comment, orderkey.path]).toEqual([
      'bigint', 'the key', ['tpch', 'tiny', 'orders', 'orderkey']
    ]);
    expect(isExpandable(orderkey)).toBe(false);
    expect(isExpandable(address)).toBe(true);
    expect(address.children!.map(f => f.path)).toEqual([
      ['tpch', 'tiny', 'orders', 'address', 'street']
    ]);
    model.collapse(orders);
    await model.expand(orders); // known already: no new request
    expect(api.requests.slice(2)).toEqual([
      'catalogs?cluster=adhoc',
      'schemas?catalog=tpch&cluster=adhoc',
      `tables?catalog=tpch&schema=tiny&offset=0&limit=${PAGE_SIZE}&cluster=adhoc`,
      'describe?catalog=tpch&schema=tiny&table=orders&cluster=adhoc'
    ]);
  });

  it('pages through thousands of tables a page per request', async () => {
    const all = tables(1000);
    const api = fakeApi({
      'routing-groups': GROUPS,
      catalogs: { catalogs: ['memory'] },
      schemas: { schemas: ['default'] },
      tables: pagedTables(all)
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    const memory = model.catalogs()[0];
    await model.expand(memory);
    const schema = memory.children![0];
    await model.expand(schema);
    expect(schema.children!.length).toBe(PAGE_SIZE);
    while (schema.nextOffset !== null) {
      await model.more(schema);
    }
    expect(schema.children!.map(t => t.name)).toEqual(all.map(t => t.name));
    const tableRequests = api.requests.filter(r => r.startsWith('tables'));
    expect(tableRequests.length).toBe(Math.ceil(1000 / PAGE_SIZE));
  });

  it('shows the service\'s sentence on the node that failed, and asks again next time', async () => {
    let fail = true;
    const api = fakeApi({
      'routing-groups': GROUPS,
      catalogs: { catalogs: ['tpch'] },
      schemas: () => {
        if (fail) {
          throw new Error('Quota exceeded: 50 of 50 queries used today.');
        }
        return { schemas: ['tiny'] };
      }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    const tpch = model.catalogs()[0];
    await model.expand(tpch);
    expect(tpch.error).toBe('Quota exceeded: 50 of 50 queries used today.');
    expect(tpch.children).toBeUndefined();
    model.collapse(tpch);
    fail = false;
    await model.expand(tpch);
    expect(tpch.error).toBe('');
    expect(tpch.children!.map(s => s.name)).toEqual(['tiny']);
  });

  it('refreshes: drops the cached metadata in the service, then loads the tree again', async () => {
    let catalogs = ['tpch'];
    const api = fakeApi({
      'routing-groups': GROUPS,
      'catalogs?cluster=default': () => ({ catalogs }),
      refresh: { forgotten: 3 }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    expect(model.catalogs().map(c => c.name)).toEqual(['tpch']);
    catalogs = ['memory', 'tpch'];
    const refreshing = model.refresh();
    expect(model.refreshing).toBe(true); // the panel hides the old tree meanwhile
    await refreshing;
    expect(model.refreshing).toBe(false);
    expect(model.catalogs().map(c => c.name)).toEqual(['memory', 'tpch']);
    expect(api.requests).toEqual([
      'routing-groups', 'catalogs?cluster=default',
      'POST refresh', 'routing-groups', 'catalogs?cluster=default'
    ]);
  });

  it('keeps the tree and says why when the refresh is refused', async () => {
    const api = fakeApi({
      'routing-groups': GROUPS,
      'catalogs?cluster=default': { catalogs: ['tpch'] },
      refresh: new Error('The DataHub service could not be reached; try again.')
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    await model.refresh();
    expect(model.error).toBe('The DataHub service could not be reached; try again.');
    expect(model.catalogs().map(c => c.name)).toEqual(['tpch']);
  });

  it('says why it cannot start', async () => {
    const model = new SchemaModel(fakeApi({ 'routing-groups': new Error('DataHub refused your token.') }).fetch);
    await model.start();
    expect(model.error).toBe('DataHub refused your token.');
    expect(model.started).toBe(true);
    expect(model.roots).toEqual([]);
  });

  it('searches one catalog on the server, a page at a time', async () => {
    const api = fakeApi({
      'routing-groups': GROUPS,
      catalogs: { catalogs: ['tpch'] },
      search: (request: string) => {
        const offset = Number(new URLSearchParams(request.split('?')[1]).get('offset'));
        return offset === 0
          ? {
            search: [
              { schema: 'tiny', table: 'orders', type: 'BASE TABLE' },
              { schema: 'tiny', table: 'lineitem', column: 'orderkey', column_type: 'bigint' }
            ],
            next_offset: 50
          }
          : { search: [{ schema: 'sf1', table: 'orders', type: 'BASE TABLE' }], next_offset: null };
      }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    const tpch = model.catalogs()[0];
    await model.search(tpch, 'order%');
    expect(model.hits.map(h => [h.kind, h.path])).toEqual([
      ['table', ['tpch', 'tiny', 'orders']],
      ['column', ['tpch', 'tiny', 'lineitem', 'orderkey']]
    ]);
    expect(isExpandable(model.hits[0])).toBe(true);
    expect(isExpandable(model.hits[1])).toBe(false);
    expect(model.hitsNext).toBe(50);
    await model.search(tpch, 'order%', true);
    expect(model.hits.length).toBe(3);
    expect(model.hitsNext).toBeNull();
    expect(api.requests.filter(r => r.startsWith('search'))).toEqual([
      'search?catalog=tpch&text=order%25&offset=0&limit=50&cluster=default',
      'search?catalog=tpch&text=order%25&offset=50&limit=50&cluster=default'
    ]);
    await model.search(tpch, '');
    expect(model.hits).toEqual([]);
  });

  it('drops the answer of a search overtaken by a newer one', async () => {
    let release: () => void = () => undefined;
    const slow = new Promise<void>(resolve => { release = resolve; });
    const api = fakeApi({
      'routing-groups': GROUPS,
      catalogs: { catalogs: ['tpch'] },
      search: async (request: string) => {
        if (request.includes('text=ord&')) {
          await slow;
          return { search: [{ schema: 's', table: 'ord_old' }], next_offset: null };
        }
        return { search: [{ schema: 's', table: 'orders' }], next_offset: null };
      }
    });
    const model = new SchemaModel(api.fetch);
    await model.start();
    const tpch = model.catalogs()[0];
    const first = model.search(tpch, 'ord');
    await model.search(tpch, 'orders');
    release();
    await first;
    expect(model.hits.map(h => h.name)).toEqual(['orders']);
  });
});
