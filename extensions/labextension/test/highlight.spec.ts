import { sqlSpans } from '../src/highlight';

function classesOf(text: string, word: string): string[] {
  const at = text.indexOf(word);
  return sqlSpans(text)
    .filter((s) => s.from <= at && s.to >= at + word.length)
    .map((s) => s.classes);
}

describe('sqlSpans', () => {
  const cell = "%%sql\nSELECT name, count(*) FROM tpch.tiny.nation WHERE name = 'x' -- c";

  it('marks SQL keywords with the SQL classes', () => {
    expect(classesOf(cell, 'SELECT')).toEqual(['cm-datahub-sql tok-keyword']);
    expect(classesOf(cell, 'WHERE')).toEqual(['cm-datahub-sql tok-keyword']);
  });

  it('marks strings, comments and the magic', () => {
    expect(classesOf(cell, "'x'")).toEqual(['cm-datahub-sql tok-string']);
    expect(classesOf(cell, '-- c')).toEqual(['cm-datahub-sql tok-comment']);
    expect(classesOf(cell, '%%sql')).toEqual(['cm-datahub-sql-magic']);
  });

  it('knows Trino types and treats double quotes as names', () => {
    const text = '%%sql\nSELECT CAST(x AS varchar), "order" FROM t';
    expect(classesOf(text, 'varchar')).toEqual(['cm-datahub-sql tok-typeName']);
    // A quoted name is not a string: lang-sql marks it as a special string (tok-string2).
    expect(classesOf(text, '"order"')).toEqual(['cm-datahub-sql tok-string2']);
  });

  it('marks parameters', () => {
    const text = '%%sql\nSELECT * FROM t WHERE d >= {{ since }}';
    expect(classesOf(text, '{{ since }}')).toContain('cm-datahub-sql-param');
  });

  it('leaves Python cells alone', () => {
    expect(sqlSpans('SELECT = 1\nprint(SELECT)')).toEqual([]);
  });

  it('marks SQL inside a Python string, in the string', () => {
    const text = 'df = spark.sql("""\nSELECT name FROM t WHERE n > {{ n }}\n""")\nprint("SELECT")';
    const at = text.indexOf('SELECT');
    expect(classesOf(text, 'SELECT')).toEqual([
      'cm-datahub-sql-embedded',
      'cm-datahub-sql tok-keyword'
    ]);
    expect(classesOf(text, '{{ n }}')).toContain('cm-datahub-sql-param');
    const embedded = sqlSpans(text).filter(s => s.classes === 'cm-datahub-sql-embedded');
    expect(embedded).toEqual([{ from: at - 1, to: text.indexOf('"""', at), classes: 'cm-datahub-sql-embedded' }]);
    // The Python around it, and a string that is no SQL, get nothing.
    expect(classesOf(text, 'spark')).toEqual([]);
    expect(classesOf(text, 'print')).toEqual([]);
  });

  it('marks an f-string\'s expressions as parameters, not SQL', () => {
    const text = 'spark.sql(f"SELECT {col} FROM t")';
    expect(classesOf(text, '{col}')).toContain('cm-datahub-sql-param');
    expect(classesOf(text, 'FROM')).toContain('cm-datahub-sql tok-keyword');
  });

  it('returns spans in document order', () => {
    const spans = sqlSpans(cell);
    const starts = spans.map((s) => s.from);
    expect([...starts].sort((a, b) => a - b)).toEqual(starts);
  });
});
