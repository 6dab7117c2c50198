import { fstringFields, pythonSqlRanges, pythonStrings } from '../src/pystrings';

/** The SQL found in Python strings of *text*, as text. */
function sqlIn(text: string): string[] {
  return pythonSqlRanges(text).map(r => text.slice(r.from, r.to));
}

describe('pythonStrings', () => {
  it('finds single, triple-quoted and prefixed strings and skips comments', () => {
    const text = [
      "a = 'x'  # 'not a string'",
      'b = rb"y\\"z"',
      'c = f"""multi',
      'line"""',
      "d = bar'q'"
    ].join('\n');
    const found = pythonStrings(text).map(s => [text.slice(s.from, s.to), s.triple, s.fstring]);
    expect(found).toEqual([
      ['x', false, false],
      ['y\\"z', false, false],
      ['multi\nline', true, true],
      ['q', false, false]
    ]);
  });

  it('runs an unfinished string to the end of its line, or of the text if triple', () => {
    const text = 'a = "SELECT 1\nb = """SELECT\n2';
    expect(pythonStrings(text).map(s => text.slice(s.from, s.to))).toEqual([
      'SELECT 1',
      'SELECT\n2'
    ]);
  });
});

describe('pythonSqlRanges', () => {
  it('takes the SQL argument of sql(), execute(), read_sql() and the like', () => {
    expect(sqlIn('df = spark.sql("""select a from t""")')).toEqual(['select a from t']);
    expect(sqlIn("cur.execute('update t set a = 1')")).toEqual(['update t set a = 1']);
    expect(sqlIn('pd.read_sql("select 1", conn)')).toEqual(['select 1']);
    expect(sqlIn('pd.read_sql(con=conn, sql="select 1")')).toEqual(['select 1']);
    // Other arguments and other calls are no SQL.
    expect(sqlIn('pd.read_sql(q, conn, index_col="select")')).toEqual([]);
    expect(sqlIn('print("select the rows")')).toEqual([]);
  });

  it('takes strings that start like a statement or with the --sql marker', () => {
    expect(sqlIn('sql = """\n  SELECT *\n  FROM t\n"""')).toEqual(['\n  SELECT *\n  FROM t\n']);
    expect(sqlIn('q = "SELECT * FROM t"')).toEqual(['SELECT * FROM t']);
    expect(sqlIn('q = """--sql\nfrom t select"""')).toEqual(['--sql\nfrom t select']);
    expect(sqlIn('with_x = """with x as (select 1) select * from x"""')).toHaveLength(1);
    // Prose in a one-line string: only an upper-case statement start counts.
    expect(sqlIn('title = "Select a file"')).toEqual([]);
    expect(sqlIn('doc = """Selection of things"""')).toEqual([]);
  });

  it('leaves cell magics alone (their body is no Python)', () => {
    expect(sqlIn('%%bash\necho "SELECT 1"')).toEqual([]);
    expect(sqlIn("%%sql\nSELECT 'SELECT x'")).toEqual([]);
  });

  it('finds the expressions of an f-string, not its doubled braces', () => {
    const text = 'spark.sql(f"SELECT {col} FROM {db}.t WHERE m = \'{{x}}\'")';
    const [range] = pythonSqlRanges(text);
    expect(fstringFields(text, range).map(r => text.slice(r.from, r.to))).toEqual([
      '{col}',
      '{db}'
    ]);
  });
});

describe('pythonSqlRanges on a large cell', () => {
  it('finds every SQL string of a cell of thousands of strings', () => {
    const lines = Array.from({ length: 5000 }, (_, i) => `x${i} = cur.execute("SELECT ${i}")`);
    const ranges = pythonSqlRanges(lines.join('\n'));
    expect(ranges).toHaveLength(5000);
  });
});
