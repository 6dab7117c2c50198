import { magicRanges, parameterRanges, sqlRanges, skipOptions } from '../src/regions';

function sliced(text: string): string[] {
  return sqlRanges(text).map((r) => text.slice(r.from, r.to));
}

describe('sqlRanges', () => {
  it('is the body of a %%sql cell', () => {
    expect(sliced('%%sql\nSELECT 1\nFROM t')).toEqual(['SELECT 1\nFROM t']);
  });

  it('skips the options of the header', () => {
    expect(sliced('%%sql --catalog tpch -o out --no-display\nSELECT 1')).toEqual(['SELECT 1']);
    expect(sliced('%%sql --limit=5\nSELECT 1')).toEqual(['SELECT 1']);
  });

  it('includes SQL written on the header after the options', () => {
    expect(sliced('%%sql --limit 5 SELECT *\nFROM t')).toEqual(['SELECT *\nFROM t']);
  });

  it('is the rest of a %sql line, also after an assignment', () => {
    const text = 'x = 1\ndf = %sql --catalog tpch SELECT * FROM tiny.nation\nprint(df)';
    expect(sliced(text)).toEqual(['SELECT * FROM tiny.nation']);
  });

  it('is nothing in plain Python or for other magics', () => {
    expect(sliced('SELECT = 1\nprint(SELECT)')).toEqual([]);
    expect(sliced('%%sqlite\nSELECT 1')).toEqual([]);
    expect(sliced('%%time\nx = 1')).toEqual([]);
    expect(sliced('%%sql')).toEqual([]);
  });
});

describe('magicRanges', () => {
  it('finds the magic name', () => {
    const text = 'df = %sql SELECT 1';
    expect(magicRanges(text).map((r) => text.slice(r.from, r.to))).toEqual(['%sql']);
    const cell = '%%sql\nSELECT 1';
    expect(magicRanges(cell).map((r) => cell.slice(r.from, r.to))).toEqual(['%%sql']);
  });
});

describe('parameterRanges', () => {
  it('finds {{ }} parameters but not inside strings, names or comments', () => {
    const text =
      "%%sql\nSELECT {{ a }}, '{{ b }}', \"{{ c }}\" -- {{ d }}\nFROM t WHERE x = {{ ident(e) }}";
    const [range] = sqlRanges(text);
    expect(parameterRanges(text, range).map((r) => text.slice(r.from, r.to))).toEqual([
      '{{ a }}',
      '{{ ident(e) }}'
    ]);
  });
});

describe('skipOptions', () => {
  it('stops at the first word that is no option', () => {
    const line = ' --cluster etl --explain SELECT 1';
    expect(line.slice(skipOptions(line, 0))).toEqual('SELECT 1');
  });

  it('reaches the end when an option waits for its value', () => {
    expect(skipOptions(' --catalog', 0)).toEqual(' --catalog'.length);
  });
});
