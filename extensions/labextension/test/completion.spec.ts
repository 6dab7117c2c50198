import { charIndex, completionItems, jsIndex, listType, rankOrder, sqlRequest } from '../src/completion';

/** `text` without its `|`, and the cursor there (characters). */
function at(withCursor: string): [string, number] {
  const js = withCursor.indexOf('|');
  const text = withCursor.replace('|', '');
  return [text, charIndex(js, text)];
}

describe('sqlRequest', () => {
  it('asks for the cell itself in a %%sql body and after %sql', () => {
    for (const cell of ['%%sql --catalog tpch\nSELECT * FROM |', 'df = %sql SELECT * FROM t|\nprint(df)']) {
      const [text, offset] = at(cell);
      const request = sqlRequest(text, offset);
      expect(request?.code).toBe(text);
      expect(request?.cursor).toBe(offset);
      expect(request?.toCell(3)).toBe(3);
    }
  });

  it('asks for a %%sql cell of the SQL string the cursor is in, mapped back', () => {
    const [text, offset] = at('x = 1\ndf = spark.sql("SELECT * FROM tpch.ti|ny.nation")');
    const request = sqlRequest(text, offset)!;
    expect(request.code).toBe('%%sql\nSELECT * FROM tpch.tiny.nation');
    expect(request.code.slice(0, request.cursor)).toBe('%%sql\nSELECT * FROM tpch.ti');
    // The kernel's "replace from here" lands on the same text in the cell.
    const start = request.code.indexOf('ti');
    expect(text.slice(request.toCell(start), offset)).toBe('ti');
  });

  it('counts characters, not UTF-16 units, around astral characters', () => {
    const [text, offset] = at('s = "🦆"\nq = spark.sql("SELECT 🦆 FROM t|")');
    const request = sqlRequest(text, offset)!;
    expect(request.code).toBe('%%sql\nSELECT 🦆 FROM t');
    expect(request.cursor).toBe([...request.code].length);
    expect(request.toCell(request.cursor)).toBe(offset);
    expect(jsIndex(offset, text)).toBe(text.length - 2);
  });

  it('is null outside SQL: Python, the magic and its options, other strings', () => {
    for (const cell of ['import pandas as p|d', '%%sql --catalog tp|ch\nSELECT 1', 'print("hello |world")']) {
      const [text, offset] = at(cell);
      expect(sqlRequest(text, offset)).toBeNull();
    }
  });
});

describe('completionItems', () => {
  const [text, offset] = at('%%sql\nSELECT o.| FROM tpch.tiny.orders o');
  const request = sqlRequest(text, offset)!;

  it('keeps the kernel order and shows a column\'s Trino type as its type', () => {
    const reply = {
      matches: ['orderkey', 'orderstatus', 'abs'],
      cursor_start: offset,
      cursor_end: offset,
      metadata: {
        _jupyter_types_experimental: [
          { text: 'orderkey', type: 'column', signature: 'bigint' },
          { text: 'orderstatus', type: 'column', signature: 'varchar(1)' },
          { text: 'abs', type: 'function', signature: 'abs(bigint) → bigint' }
        ]
      }
    };
    const { start, end, items } = completionItems(reply, request);
    expect([start, end]).toEqual([offset, offset]);
    expect(items.map(i => [i.label, i.type, i.shownType, i.rank])).toEqual([
      ['orderkey', 'column', 'bigint', 0],
      ['orderstatus', 'column', 'varchar(1)', 1],
      ['abs', 'function', 'function', 2]
    ]);
    // The kernel documents a function inspected in the SQL with it inserted.
    const fn = items[2];
    expect(fn.inspect.code).toBe('%%sql\nSELECT o.abs');
    expect(fn.inspect.cursor).toBe(fn.inspect.code.length);
    expect(fn.documentation).toBeUndefined();
  });

  it('keeps a long ROW type whole in the documentation', () => {
    const type = 'row(street varchar, city varchar, zip varchar)';
    const reply = {
      matches: ['address'],
      cursor_start: offset,
      cursor_end: offset,
      metadata: { _jupyter_types_experimental: [{ text: 'address', type: 'column', signature: type }] }
    };
    const [item] = completionItems(reply, request).items;
    expect(item.shownType).toBe('row(…)');
    expect(item.documentation).toBe(type);
  });

  it('works with a kernel that sends no types', () => {
    const reply = { matches: ['orders'], cursor_start: offset, cursor_end: offset };
    expect(completionItems(reply, request).items[0]).toMatchObject({ label: 'orders', type: '', shownType: '', rank: 0 });
  });
});

describe('listType', () => {
  it('is the kind, or a column\'s Trino type, shortened when long', () => {
    expect(listType('table', 'tpch.tiny.orders')).toBe('table');
    expect(listType('function', 'abs(bigint) → bigint')).toBe('function');
    expect(listType('column', 'decimal(12,2)')).toBe('decimal(12,2)');
    expect(listType('field', '')).toBe('field');
    expect(listType('column', 'timestamp(3) with time zone')).toBe('timestamp(3) with time zone');
    expect(listType('column', 'timestamp(6) with time zone and more')).toBe('timestamp(6) with time zone…');
    expect(listType('column', 'array(row(a bigint, b varchar))')).toBe('array(…)');
  });
});

describe('rankOrder', () => {
  const items = [
    { label: 'orderkey', rank: 0 },
    { label: 'custkey', rank: 1 },
    { label: 'totalprice', rank: 2 },
    { label: 'orderdate', rank: 3 },
    { label: 'ORDER', rank: 4 },
    { label: 'words_from_the_cell' }
  ];

  it('puts the kernel\'s items that start with the query first, in its order', () => {
    expect(rankOrder(items, 'o').map(i => i.label)).toEqual([
      'orderkey',
      'orderdate',
      'ORDER',
      'custkey',
      'totalprice',
      'words_from_the_cell'
    ]);
  });

  it('leaves the order alone when nothing else decides', () => {
    expect(rankOrder(items, '').map(i => i.label)).toEqual(items.map(i => i.label));
  });
});
