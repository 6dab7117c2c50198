import {
  MAX_SCROLL_PX,
  PageCache,
  firstRow,
  firstLine,
  initialWidth,
  nextSort,
  pagesFor,
  rangeOf,
  resized,
  scrollHeight,
  scrollTopFor,
  toTsv,
  viewKey,
  withFirstLine
} from '../src/gridmodel';

describe('scrolling', () => {
  test('the top shows the first row, the bottom the last ones, in proportion between', () => {
    expect(scrollHeight(100, 24)).toBe(2400);
    const max = 2400 - 240;
    expect(firstRow(0, max, 100, 10)).toBe(0);
    expect(firstRow(48, max, 100, 10)).toBe(2);
    expect(firstRow(max, max, 100, 10)).toBe(90);
    expect(firstRow(99999, max, 100, 10)).toBe(90);
    expect(firstRow(10, 0, 5, 10)).toBe(0); // nothing to scroll
  });

  test('a million rows are reached within the height cap', () => {
    const rows = 1_000_000;
    expect(scrollHeight(rows, 24)).toBe(MAX_SCROLL_PX);
    const max = MAX_SCROLL_PX - 300;
    expect(firstRow(0, max, rows, 12)).toBe(0);
    expect(firstRow(max, max, rows, 12)).toBe(rows - 12);
    expect(Math.abs(firstRow(max / 2, max, rows, 12) - (rows - 12) / 2)).toBeLessThanOrEqual(1);
    // The inverse lands on the same row.
    for (const row of [0, 1, 777_777, rows - 12]) {
      expect(firstRow(scrollTopFor(row, max, rows, 12), max, rows, 12)).toBe(row);
    }
  });

  test('the pages holding a window of rows', () => {
    expect(pagesFor(0, 12, 200)).toEqual([0]);
    expect(pagesFor(195, 12, 200)).toEqual([0, 1]);
    expect(pagesFor(999_990, 10, 200)).toEqual([4999]);
    expect(pagesFor(5, 0, 200)).toEqual([]);
  });
});

describe('the page cache', () => {
  test('keeps at most its capacity, dropping the least recently used', () => {
    const cache = new PageCache(2, 2);
    cache.setView('v');
    cache.put('v', 0, [['a'], ['b']]);
    cache.put('v', 1, [['c'], ['d']]);
    expect(cache.row(1)).toEqual(['b']); // page 0 used last
    cache.put('v', 2, [['e'], ['f']]);
    expect(cache.size).toBe(2);
    expect(cache.has(1)).toBe(false);
    expect(cache.row(0)).toEqual(['a']);
    expect(cache.row(5)).toEqual(['f']);
    expect(cache.row(3)).toBeUndefined();
  });

  test('never mixes views: a late page of an old view is dropped', () => {
    const cache = new PageCache(4, 2);
    cache.setView('sorted');
    cache.put('unsorted', 0, [['x'], ['y']]);
    expect(cache.row(0)).toBeUndefined();
    cache.put('sorted', 0, [['y'], ['x']]);
    cache.setView('filtered');
    expect(cache.size).toBe(0);
  });
});

describe('sorting, views, copying, widths', () => {
  test('a header click cycles ascending, descending, none', () => {
    const once = nextSort([], 2);
    expect(once).toEqual([{ column: 2, descending: false }]);
    const twice = nextSort(once, 2);
    expect(twice).toEqual([{ column: 2, descending: true }]);
    expect(nextSort(twice, 2)).toEqual([]);
    expect(nextSort(twice, 0)).toEqual([{ column: 0, descending: false }]);
  });

  test('empty filters do not make another view', () => {
    expect(viewKey({ sort: [], filters: { '1': ' ' } })).toBe(viewKey({ sort: [], filters: {} }));
    expect(viewKey({ sort: [], filters: { '1': 'a' } })).not.toBe(viewKey({ sort: [], filters: {} }));
  });

  test('copied cells are tab separated, quoted where a spreadsheet needs it', () => {
    const range = rangeOf({ row: 1, column: 2 }, { row: 0, column: 1 });
    expect(range).toEqual({ top: 0, bottom: 1, left: 1, right: 2 });
    const rows = [
      ['1', 'a\tb', null],
      ['2', 'say "hi"', 'x']
    ];
    expect(toTsv(rows, range)).toBe('"a\tb"\t\n"say ""hi"""\tx');
    expect(toTsv(rows, range, ['id', 'text', 'note'])).toMatch(/^text\tnote\n/);
  });

  test('columns resize but never below the minimum', () => {
    expect(resized(100, 25)).toBe(125);
    expect(resized(100, -90)).toBe(48);
    expect(initialWidth('n', ['1', '22'])).toBe(64);
    expect(initialWidth('comment', ['x'.repeat(500)])).toBe(320);
  });

  test('the first line of a cell is replaced, the rest kept', () => {
    const source = '%%sql --chart line\nSELECT 1';
    expect(firstLine(source)).toBe('%%sql --chart line');
    expect(withFirstLine(source, '%%sql --chart bar --x a')).toBe('%%sql --chart bar --x a\nSELECT 1');
    expect(withFirstLine('%%sql', '%%sql --chart none')).toBe('%%sql --chart none');
  });
});
