import { formatExpression, isSqlCell, readFormatted } from '../src/format';

describe('format', () => {
  it('recognises %%sql cells only', () => {
    expect(isSqlCell('%%sql\nSELECT 1')).toBe(true);
    expect(isSqlCell('%%sql --limit 5')).toBe(true);
    expect(isSqlCell('%%sqlite\nSELECT 1')).toBe(false);
    expect(isSqlCell('x = 1')).toBe(false);
  });

  it('passes the cell as a string literal, never as code', () => {
    const expression = formatExpression('%%sql\nSELECT "a", \'b\'); import os');
    expect(expression).toBe(
      "__import__('datahub.extensions.formatting').extensions.formatting" +
        '.FormattedCell("%%sql\\nSELECT \\"a\\", \'b\'); import os")'
    );
  });

  it('reads the text or the error from the user expression', () => {
    const ok = { status: 'ok', data: { 'application/json': { text: 'SELECT\n  1' } } };
    expect(readFormatted(ok)).toEqual({ text: 'SELECT\n  1' });
    const refused = { status: 'ok', data: { 'application/json': { error: 'Cannot format' } } };
    expect(readFormatted(refused)).toEqual({ error: 'Cannot format' });
    expect(readFormatted({ status: 'error' }).error).toContain('could not format');
  });
});
