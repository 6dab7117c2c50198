/**
 * DataHub's JupyterLab extension. SQL in `%%sql` cells and after `%sql` is highlighted as
 * Trino SQL, with `{{ … }}` parameters shown as such. Completion comes from the kernel
 * (the `%%sql` magic completes from the user's own Trino metadata), so it works the
 * same in every frontend; here the list keeps the kernel's ranking, shows columns' Trino
 * types and documents functions (completer.ts). The schema browser side panel lists what Trino lets the user
 * see, read as them through their server and the DataHub service. A `%%sql` result is a
 * grid that pages through the kernel's DataFrame, its chart has a builder that writes its
 * choice back into the cell, and `%%sql` cells have Run and Cancel in their toolbar.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { ICompletionProviderManager } from '@jupyterlab/completer';
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry
} from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { tableRowsIcon } from '@jupyterlab/ui-components';

import { SchemaBrowser, serverFetch } from './browser';
import { CHART_MIMETYPE, ChartRenderer, autoChart } from './chartbuilder';
import { GRID_MIMETYPE, GridRenderer, IGridContext } from './grid';
import { GridConnections } from './gridcomm';
import { SqlCompletionProvider, standAside } from './completer';
import { formatExpression, isSqlCell, readFormatted } from './format';
import { sqlHighlighting } from './highlight';
import { SchemaNode, insertText, previewCell } from './schema';
import { addSqlToolbarCommands } from './toolbar';
import '../style/grid.css';

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

const completion: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:sql-completion',
  description: 'Completion of SQL in the kernel\'s ranking, with Trino types and function docs.',
  autoStart: true,
  requires: [ICompletionProviderManager],
  activate: (app: JupyterFrontEnd, manager: ICompletionProviderManager): void => {
    const provider = new SqlCompletionProvider();
    manager.registerProvider(provider);
    // JupyterLab's kernel provider is registered by a plugin of its own, which may start
    // before or after this one: by the time the application is restored, every plugin has.
    standAside(manager, provider);
    void app.restored.then(() => standAside(manager, provider));
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
        const panel = tracker.currentWidget;
        const source = cell?.model.sharedModel.getSource() ?? '';
        if (!cell || !panel || !isSqlCell(source)) {
          return;
        }
        // Pressed while the notebook's kernel is still starting: wait for it, do not drop it.
        await panel.sessionContext.ready;
        const kernel = panel.sessionContext.session?.kernel;
        if (!kernel) {
          await showErrorMessage('Format SQL', 'This notebook has no kernel; start one to format SQL.');
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

const INSERT_NAME = 'jupyter-datahub:schema-insert-name';
const PREVIEW = 'jupyter-datahub:schema-preview';

const schemaBrowser: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:schema-browser',
  description: 'The schema browser: what Trino lets you see, with search and previews.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    const browser = new SchemaBrowser(serverFetch(app.serviceManager.serverSettings));
    browser.id = 'jupyter-datahub-schema-browser';
    browser.title.icon = tableRowsIcon;
    browser.title.caption = 'DataHub schema browser';
    app.shell.add(browser, 'left', { rank: 600 });

    const clicked = (): SchemaNode | undefined =>
      browser.nodeOf(app.contextMenuHitTest(n => n.classList.contains('jp-DataHub-schemaRow')) ?? null);

    app.commands.addCommand(INSERT_NAME, {
      label: 'Insert name into cell',
      execute: () => {
        const node = clicked();
        const editor = tracker.activeCell?.editor;
        if (!node || !editor) {
          return showErrorMessage('Insert name into cell', 'Select a cell in a notebook first.');
        }
        const text = insertText(node);
        if (editor.replaceSelection) {
          editor.replaceSelection(text);
        } else {
          const at = editor.getOffsetAt(editor.getCursorPosition());
          editor.model.sharedModel.updateSource(at, at, text);
        }
        editor.focus();
      }
    });
    app.commands.addCommand(PREVIEW, {
      label: 'Preview 100 rows',
      isVisible: () => ['table', 'column'].includes(clicked()?.kind ?? ''),
      execute: async () => {
        const node = clicked();
        const panel = tracker.currentWidget;
        if (!node || !panel) {
          return showErrorMessage('Preview 100 rows', 'Open a notebook first.');
        }
        NotebookActions.insertBelow(panel.content);
        panel.content.activeCell?.model.sharedModel.setSource(
          previewCell(node, browser.model.defaultGroup)
        );
        await NotebookActions.run(panel.content, panel.sessionContext);
      }
    });
    const selector = '.jp-DataHub-schemaRow';
    app.contextMenu.addItem({ command: INSERT_NAME, selector, rank: 1 });
    app.contextMenu.addItem({ command: PREVIEW, selector, rank: 2 });
  }
};

/** Ahead of text/html and Plotly (ranks 50 and 0), which other frontends show instead. */
const RESULT_RANK = -5;

const resultGrid: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:result-grid',
  description: 'The result grid and the chart builder of %%sql results.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    const connections = new GridConnections();
    const attach = (panel: NotebookPanel): void => {
      // Each notebook has its own registry (and kernel): its renderers know both.
      const rendermime = panel.content.rendermime;
      const context: IGridContext = {
        panel,
        connections,
        chart: (node, rid) => autoChart(context, node, rid)
      };
      rendermime.addFactory(
        {
          safe: true,
          mimeTypes: [GRID_MIMETYPE],
          createRenderer: options => new GridRenderer(options, context)
        },
        RESULT_RANK
      );
      rendermime.addFactory(
        {
          safe: true,
          mimeTypes: [CHART_MIMETYPE],
          createRenderer: options => new ChartRenderer(options, context, rendermime)
        },
        RESULT_RANK
      );
    };
    tracker.forEach(attach);
    tracker.widgetAdded.connect((_, panel) => attach(panel));
  }
};

const sqlToolbar: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-datahub:toolbar',
  description: 'Run and Cancel in the toolbar of %%sql cells (schema/toolbar.json).',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    addSqlToolbarCommands(app, tracker);
  }
};

export default [highlighting, completion, formatting, schemaBrowser, resultGrid, sqlToolbar];
