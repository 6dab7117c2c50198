/**
 * DataHub's completion provider: in SQL (a `%%sql` cell, a `%sql` line, a SQL string in
 * Python) it asks the kernel, as JupyterLab's kernel provider does, but keeps the
 * kernel's ranking, shows a column's Trino type as its type and documents Trino functions
 * in the completer's documentation panel. Elsewhere it stands aside and JupyterLab's own
 * providers answer as before (its list model and renderer, the first provider's, change
 * nothing for their items). Where it answers, JupyterLab's kernel provider stands aside
 * (`standAside`).
 */
import {
  Completer,
  CompleterModel,
  CompletionHandler,
  ICompletionContext,
  ICompletionProvider,
  ICompletionProviderManager,
  KERNEL_PROVIDER_ID
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
  /** The context of the request this provider has just said it answers (see `claims`). */
  private _claimed: ICompletionContext | null = null;

  async isApplicable(context: ICompletionContext): Promise<boolean> {
    const editor = context.editor;
    if (!context.session?.kernel || !editor) {
      return false;
    }
    const text = editor.model.sharedModel.getSource();
    const at = editor.getOffsetAt(editor.getCursorPosition());
    const applies = sqlRequest(text, [...text.slice(0, at)].length) !== null;
    if (applies) {
      // JupyterLab asks every provider in one go, in rank order: the claim lasts until
      // the providers after this one have been asked.
      this._claimed = context;
      queueMicrotask(() => {
        if (this._claimed === context) {
          this._claimed = null;
        }
      });
    }
    return applies;
  }

  /** Whether this provider has just said it answers the request in *context*: true only
   * while JupyterLab asks the providers ranked after it. */
  claims(context: ICompletionContext): boolean {
    return this._claimed === context;
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
 * Where DataHub's provider answers (SQL at the cursor), JupyterLab's kernel provider would
 * ask the kernel too, for the whole cell: in a SQL cell the same request a second time,
 * and in a SQL string in Python IPython's Python completions (magics, file names), mixed
 * into the SQL list. So the kernel provider stands aside for the requests DataHub's claims
 * (which it can when DataHub's comes first, as it does unless a user ranks the kernel's
 * higher); everywhere else it answers as before.
 */
export function standAside(manager: ICompletionProviderManager, ours: SqlCompletionProvider): void {
  // The map of providers is the manager's, not its token's (JupyterLab 4.6).
  const providers = (manager as Partial<{ getProviders(): Map<string, ICompletionProvider> }>)
    .getProviders?.();
  const kernel = providers?.get(KERNEL_PROVIDER_ID);
  if (!kernel || STOOD_ASIDE.has(kernel)) {
    return;
  }
  STOOD_ASIDE.add(kernel);
  const isApplicable = kernel.isApplicable.bind(kernel);
  kernel.isApplicable = async (context: ICompletionContext): Promise<boolean> =>
    !ours.claims(context) && isApplicable(context);
}

/** The kernel providers `standAside` has wrapped. */
const STOOD_ASIDE = new WeakSet<ICompletionProvider>();

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
