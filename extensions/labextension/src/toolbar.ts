/**
 * Run and Cancel in the toolbar of `%%sql` cells (JupyterLab's cell toolbar: the buttons
 * are declared in schema/toolbar.json and act on the active cell). Cancel interrupts the
 * kernel, which the magic turns into a cancel of the running query on Trino; the live
 * progress is the magic's own output.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookActions } from '@jupyterlab/notebook';
import { runIcon, stopIcon } from '@jupyterlab/ui-components';

import { isSqlCell } from './format';

export const RUN_SQL = 'jupyter-datahub:run-sql-cell';
export const CANCEL_SQL = 'jupyter-datahub:cancel-sql-cell';

/** Whether a cell is running: the cell model's execution state, for code cells. */
export function isRunning(state: string | undefined): boolean {
  return state === 'running';
}

export function addSqlToolbarCommands(app: JupyterFrontEnd, tracker: INotebookTracker): void {
  const sqlCell = (): CodeCell | null => {
    const cell = tracker.activeCell;
    return cell instanceof CodeCell && isSqlCell(cell.model.sharedModel.getSource()) ? cell : null;
  };
  app.commands.addCommand(RUN_SQL, {
    caption: 'Run this SQL cell',
    icon: runIcon,
    isVisible: () => !!sqlCell(),
    execute: async () => {
      const panel = tracker.currentWidget;
      if (panel && sqlCell()) {
        await NotebookActions.run(panel.content, panel.sessionContext);
      }
    }
  });
  app.commands.addCommand(CANCEL_SQL, {
    caption: 'Cancel the running query (interrupts the kernel)',
    icon: stopIcon,
    isVisible: () => !!sqlCell(),
    isEnabled: () => isRunning(sqlCell()?.model.executionState),
    execute: async () => {
      const kernel = tracker.currentWidget?.sessionContext.session?.kernel;
      if (kernel && isRunning(sqlCell()?.model.executionState)) {
        await kernel.interrupt();
      }
    }
  });
  const changed = () => {
    app.commands.notifyCommandChanged(RUN_SQL);
    app.commands.notifyCommandChanged(CANCEL_SQL);
  };
  // Typing `%%sql` into a cell shows the buttons; only a change of that redraws them.
  let wasSql = false;
  const edited = () => {
    if (!!sqlCell() !== wasSql) {
      wasSql = !wasSql;
      changed();
    }
  };
  let watched: CodeCell | null = null;
  tracker.activeCellChanged.connect(() => {
    watched?.model.stateChanged.disconnect(changed);
    watched?.model.contentChanged.disconnect(edited);
    watched = tracker.activeCell instanceof CodeCell ? tracker.activeCell : null;
    watched?.model.stateChanged.connect(changed);
    watched?.model.contentChanged.connect(edited);
    wasSql = !!sqlCell();
    changed();
  });
}
