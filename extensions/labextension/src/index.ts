/**
 * DataHub's JupyterLab extension. SQL in `%%sql` cells and after `%sql` is highlighted as
 * Trino SQL, with `{{ … }}` parameters shown as such. Completion comes from the kernel
 * (the `%%sql` magic completes from the user's own Trino metadata), so it works the
 * same in every frontend.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker } from '@jupyterlab/notebook';

import { formatExpression, isSqlCell, readFormatted } from './format';
import { sqlHighlighting } from './highlight';

const highlighting: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:sql-highlighting',
  description: 'Highlights the SQL of %%sql cells and %sql lines (Trino dialect).',
  autoStart: true,
  requires: [IEditorExtensionRegistry],
  activate: (_app: JupyterFrontEnd, registry: IEditorExtensionRegistry): void => {
    registry.addExtension({
      name: 'jupyter-datahub:sql-highlighting',
      factory: () => EditorExtensionRegistry.createImmutableExtension(sqlHighlighting())
    });
  }
};

const FORMAT_SQL = 'jupyter-datahub:format-sql';

const formatting: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:format-sql',
  description: 'Format SQL (Alt+Shift+F): lays out the active %%sql cell with sqlglot.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    app.commands.addCommand(FORMAT_SQL, {
      label: 'Format SQL',
      isEnabled: () =>
        !!tracker.activeCell && isSqlCell(tracker.activeCell.model.sharedModel.getSource()),
      execute: async () => {
        const cell = tracker.activeCell;
        const kernel = tracker.currentWidget?.sessionContext.session?.kernel;
        const source = cell?.model.sharedModel.getSource() ?? '';
        if (!cell || !kernel || !isSqlCell(source)) {
          return;
        }
        const reply = await kernel.requestExecute({
          code: '',
          silent: true,
          store_history: false,
          user_expressions: { formatted: formatExpression(source) }
        }).done;
        const content = reply.content as { user_expressions?: Record<string, unknown> };
        const formatted = readFormatted(content.user_expressions?.formatted);
        if (formatted.text === undefined) {
          await showErrorMessage('Format SQL', formatted.error ?? 'Cannot format this cell.');
        } else if (cell.model.sharedModel.getSource() === source) {
          // Only if nobody typed meanwhile: never lose an edit.
          cell.model.sharedModel.setSource(formatted.text);
        }
      }
    });
    app.commands.addKeyBinding({
      command: FORMAT_SQL,
      keys: ['Alt Shift F'],
      selector: '.jp-Notebook .jp-Cell'
    });
  }
};

export default [highlighting, formatting];
