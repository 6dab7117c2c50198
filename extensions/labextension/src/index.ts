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
import {
  EditorExtensionRegistry,
  IEditorExtensionRegistry
} from '@jupyterlab/codemirror';

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

export default highlighting;
