/**
 * DataHub's completion provider: in SQL (a `%%sql` cell, a `%sql` line, a SQL string in
 * Python) it asks the kernel, as JupyterLab's kernel provider does, but keeps the
 * kernel's ranking, shows a column's Trino type as its type and documents Trino functions
 * in the completer's documentation panel. Elsewhere it stands aside and JupyterLab's own
 * providers answer as before (its list model and renderer, the first provider's, change
 * nothing for their items).
 */
import {
  Completer,
  CompleterModel,
  CompletionHandler,
  ICompletionContext,
  ICompletionProvider
} from '@jupyterlab/completer';

import { CompleteReply, SqlCompletionItem, completionItems, rankOrder, sqlRequest } from './completion';

/** Ahead of JupyterLab's kernel (550) and context (500) providers: the list's first
 * provider, whose items come first and whose model the list uses. */
const RANK = 1000;

export class SqlCompletionProvider implements ICompletionProvider<
  CompletionHandler.ICompletionItem
> {
  readonly identifier = 'jupyter-datahub:sql-completion';
  readonly rank = RANK;
  readonly renderer = new SqlCompletionRenderer();

  async isApplicable(context: ICompletionContext): Promise<boolean> {
    const editor = context.editor;
    if (!context.session?.kernel || !editor) {
      return false;
    }
    const text = editor.model.sharedModel.getSource();
    const at = editor.getOffsetAt(editor.getCursorPosition());
    return sqlRequest(text, [...text.slice(0, at)].length) !== null;
  }

  async fetch(
    request: CompletionHandler.IRequest,
    context: ICompletionContext
  ): Promise<CompletionHandler.ICompletionItemsReply<SqlCompletionItem>> {
    const kernel = context.session?.kernel;
    const sql = sqlRequest(request.text, request.offset);
    if (!kernel || !sql) {
      return { start: request.offset, end: request.offset, items: [] };
    }
    const msg = await kernel.requestComplete({ code: sql.code, cursor_pos: sql.cursor });
    if (msg.content.status !== 'ok') {
      throw new Error('The kernel could not complete this SQL.');
    }
    return completionItems(msg.content as CompleteReply, sql);
  }

  /** A function's documentation (its signature and description), from the kernel's
   * inspection of the SQL with the function inserted. */
  async resolve(
    item: SqlCompletionItem,
    context: ICompletionContext
  ): Promise<SqlCompletionItem> {
    const kernel = context.session?.kernel;
    if (item.kind !== 'function' || item.documentation || !kernel) {
      return item;
    }
    const msg = await kernel.requestInspect({
      code: item.inspect.code,
      cursor_pos: item.inspect.cursor,
      detail_level: 0
    });
    const reply = msg.content;
    if (reply.status === 'ok' && reply.found) {
      item.documentation = String(reply.data['text/plain'] ?? '');
    } else if (item.detail) {
      item.documentation = item.detail;
    }
    return item;
  }

  /** The list's model (this provider's, being the first): it keeps the kernel's order. */
  async modelFactory(): Promise<RankedCompleterModel> {
    return new RankedCompleterModel();
  }
}

/**
 * JupyterLab's completer model, except that once the user types after the list opened,
 * the kernel's SQL items keep its ranking (JupyterLab's own sorts by match, then
 * alphabetically). Lists without DataHub's items are left as JupyterLab orders them.
 */
export class RankedCompleterModel extends CompleterModel {
  private _ranked: {
    from: CompletionHandler.ICompletionItems;
    to: CompletionHandler.ICompletionItems;
  } | null = null;

  completionItems(): CompletionHandler.ICompletionItems {
    const items = super.completionItems();
    if (!this.query || !items.some(item => (item as { rank?: number }).rank !== undefined)) {
      return items;
    }
    if (this._ranked?.from !== items) {
      this._ranked = { from: items, to: rankOrder(items, this.query) };
    }
    return this._ranked.to;
  }
}

/** JupyterLab's completion list items, except that DataHub's show their `shownType` (a
 * column's Trino type) in the type column; the monogram stays the kind's. */
export class SqlCompletionRenderer extends Completer.Renderer {
  createCompletionItemNode(
    item: CompletionHandler.ICompletionItem,
    orderedTypes: string[]
  ): HTMLLIElement {
    const li = super.createCompletionItemNode(item, orderedTypes);
    const shown = (item as Partial<SqlCompletionItem>).shownType;
    const column = li.querySelector('.jp-Completer-typeExtended');
    if (shown && column && shown !== item.type) {
      column.textContent = shown;
      li.title = `${item.type}: ${shown}`;
    }
    return li;
  }

  itemWidthHeuristic(item: CompletionHandler.ICompletionItem): number {
    const shown = (item as Partial<SqlCompletionItem>).shownType;
    return super.itemWidthHeuristic(shown ? { ...item, type: shown } : item);
  }
}
