/**
 * SQL highlighting inside notebook cells: a CodeMirror view plugin that parses each SQL
 * range of the cell (see regions.ts) with the Trino dialect and marks its tokens with
 * `cm-datahub-sql` and the standard `tok-*` classes, `{{ … }}` parameters with
 * `cm-datahub-sql-param` and the magic's name with `cm-datahub-sql-magic`. SQL inside
 * the Python strings of a Python cell (`spark.sql("""SELECT …""")`, see pystrings.ts)
 * is marked the same way, inside `cm-datahub-sql-embedded`, with an f-string's
 * `{expression}` pieces as parameters.
 */
import { Extension, Range as DecorationRange } from '@codemirror/state';
import {
  Decoration,
  DecorationSet,
  EditorView,
  ViewPlugin,
  ViewUpdate
} from '@codemirror/view';
import { classHighlighter, highlightTree } from '@lezer/highlight';

import { fstringFields, pythonSqlRanges } from './pystrings';
import { Range, magicRanges, parameterRanges, sqlRanges } from './regions';
import { TrinoSQL } from './trino';

/** One highlighted piece of a cell: its range and CSS classes. */
export interface Span {
  from: number;
  to: number;
  classes: string;
}

/** Highlighted pieces of a cell's text, in order (pure; used by the plugin and tests). */
export function sqlSpans(text: string): Span[] {
  const spans: Span[] = [];
  for (const range of magicRanges(text)) {
    spans.push({ ...range, classes: 'cm-datahub-sql-magic' });
  }
  for (const range of sqlRanges(text)) {
    highlightSql(text, range, spans);
    for (const param of parameterRanges(text, range)) {
      spans.push({ ...param, classes: 'cm-datahub-sql-param' });
    }
  }
  for (const range of pythonSqlRanges(text)) {
    spans.push({ from: range.from, to: range.to, classes: 'cm-datahub-sql-embedded' });
    highlightSql(text, range, spans);
    const fields = range.fstring ? fstringFields(text, range) : parameterRanges(text, range);
    for (const field of fields) {
      spans.push({ ...field, classes: 'cm-datahub-sql-param' });
    }
  }
  return spans
    .filter((s) => s.to > s.from)
    .sort((a, b) => a.from - b.from || b.to - a.to);
}

/** The Trino SQL tokens of *range* of *text*, added to *spans*. */
function highlightSql(text: string, range: Range, spans: Span[]): void {
  const tree = TrinoSQL.language.parser.parse(text.slice(range.from, range.to));
  highlightTree(tree, classHighlighter, (from, to, classes) => {
    spans.push({
      from: range.from + from,
      to: range.from + to,
      classes: `cm-datahub-sql ${classes}`
    });
  });
}

function decorations(view: EditorView): DecorationSet {
  const marks: DecorationRange<Decoration>[] = sqlSpans(view.state.doc.toString()).map(
    (s) => Decoration.mark({ class: s.classes }).range(s.from, s.to)
  );
  return Decoration.set(marks, true);
}

/** The editor extension: SQL highlighting that follows every edit of the cell. */
export function sqlHighlighting(): Extension {
  return ViewPlugin.fromClass(
    class {
      decorations: DecorationSet;

      constructor(view: EditorView) {
        this.decorations = decorations(view);
      }

      update(update: ViewUpdate): void {
        if (update.docChanged) {
          this.decorations = decorations(update.view);
        }
      }
    },
    { decorations: (plugin) => plugin.decorations }
  );
}
