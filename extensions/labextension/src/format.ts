/**
 * "Format SQL": the kernel formats the active `%%sql` cell with sqlglot (Trino dialect;
 * datahub.extensions.formatting), asked through a silent request's user expression, and
 * the cell's text is replaced. Pure helpers here; the command is in index.ts.
 */

/** Whether a cell's text is a `%%sql` cell. */
export function isSqlCell(source: string): boolean {
  return /^\s*%%sql(\s|$)/.test(source);
}

/**
 * The Python expression that formats `source` in the kernel. The cell's text is passed as
 * a JSON string, which is also a valid Python string literal (never pasted as code).
 */
export function formatExpression(source: string): string {
  return (
    "__import__('datahub.extensions.formatting').extensions.formatting" +
    `.FormattedCell(${JSON.stringify(source)})`
  );
}

/** The kernel's answer: the new text, or why the cell stays as it is. */
export interface Formatted {
  text?: string;
  error?: string;
}

/** Read the answer out of a user expression's result (`{status, data}`). */
export function readFormatted(result: unknown): Formatted {
  const value = result as { status?: string; data?: Record<string, unknown> } | undefined;
  if (!value || value.status !== 'ok' || !value.data) {
    return { error: 'The kernel could not format this cell (is the DataHub SQL extension loaded?).' };
  }
  const json = value.data['application/json'] as Formatted | undefined;
  return json ?? { error: 'The kernel answered without a formatted cell.' };
}
