/**
 * The chart builder: a `%%sql` chart output (MIME type `application/vnd.datahub.chart+json`
 * next to the Plotly figure) drawn with controls for its kind, x, y, colour and
 * aggregation. A change asks the kernel for the chart (drawn there by the magic's own
 * code, `datahub/charts.py`), replaces the output with it, and rewrites the cell's first
 * line with the options that draw it (`--chart bar --x … --y … --color … --agg …`), so
 * running the cell again, or opening the shared notebook, shows the same chart.
 */
import { Cell, CodeCell } from '@jupyterlab/cells';
import { IRenderMimeRegistry, MimeModel } from '@jupyterlab/rendermime';
import { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { JSONObject } from '@lumino/coreutils';
import { PanelLayout, Widget } from '@lumino/widgets';

import { GRID_MIMETYPE, IGridContext, gridComm } from './grid';
import { IChartChoice, firstLine, withFirstLine } from './gridmodel';

export const CHART_MIMETYPE = 'application/vnd.datahub.chart+json';
export const PLOTLY_MIMETYPE = 'application/vnd.plotly.v1+json';
export const CHART_KINDS = ['none', 'line', 'bar', 'scatter', 'histogram'];
export const AGGREGATIONS = ['sum', 'mean', 'count', 'min', 'max'];

interface IChartPayload {
  result: string;
  spec: IChartChoice;
  columns: { name: string; kind: string }[];
}

/** The code cell of a notebook that holds `node`. */
export function cellOf(context: IGridContext, node: HTMLElement): CodeCell | null {
  const cell = context.panel.content.widgets.find((c: Cell) => c.node.contains(node));
  return cell instanceof CodeCell ? cell : null;
}

function outputIndex(cell: CodeCell, mime: string, rid: string): number {
  const outputs = cell.model.outputs;
  for (let i = 0; i < outputs.length; i++) {
    const data = outputs.get(i).data[mime] as JSONObject | undefined;
    if (data && data.result === rid) {
      return i;
    }
  }
  return -1;
}

/**
 * Ask the kernel for the chart `choice` of result `rid`, put it into the cell holding
 * `node` (replacing its chart, before its grid, or removing it for kind none) and write
 * the options into the cell's first line. Throws the kernel's sentence on refusal.
 */
export async function drawChart(
  context: IGridContext,
  node: HTMLElement,
  rid: string,
  choice: IChartChoice
): Promise<void> {
  const cell = cellOf(context, node);
  const comm = gridComm(context);
  if (!cell || !comm) {
    throw new Error('Run the cell to change its chart.');
  }
  const source = cell.model.sharedModel.getSource();
  const line = firstLine(source);
  const answer = await comm.request({
    op: 'chart',
    result: rid,
    choice: choice as unknown as JSONObject,
    line
  });
  const now = cell.model.sharedModel.getSource();
  if (typeof answer.line === 'string' && firstLine(now) === line) {
    // Only if nobody edited the line meanwhile: never lose an edit.
    cell.model.sharedModel.setSource(withFirstLine(now, answer.line));
  }
  const bundle = answer.bundle as JSONObject | null;
  const outputs = cell.model.outputs;
  const at = outputIndex(cell, CHART_MIMETYPE, rid);
  const output = bundle
    ? { output_type: 'display_data', data: bundle, metadata: {} }
    : null;
  if (at >= 0 && output) {
    outputs.set(at, output);
  } else if (at >= 0) {
    outputs.remove(at);
  } else if (output) {
    // A new chart goes above the grid, where the magic puts it on a run.
    const list = outputs.toJSON();
    const grid = outputIndex(cell, GRID_MIMETYPE, rid);
    list.splice(grid >= 0 ? grid : list.length, 0, output);
    outputs.fromJSON(list);
  }
}

/** The first chart a result gets from the grid's Chart button: the magic's own pick. */
export function autoChart(context: IGridContext, node: HTMLElement, rid: string): Promise<void> {
  return drawChart(context, node, rid, { kind: 'auto', x: null, y: [], color: null, agg: null });
}

function select(label: string, options: string[], value: string | string[], multiple = false): HTMLSelectElement {
  const node = document.createElement('select');
  node.className = 'jp-DataHub-chartSelect';
  node.setAttribute('aria-label', label);
  node.multiple = multiple;
  if (multiple) {
    node.size = Math.min(4, Math.max(2, options.length));
  }
  const chosen = new Set(Array.isArray(value) ? value : [value]);
  for (const o of options) {
    const option = document.createElement('option');
    option.value = o;
    option.textContent = o === '' ? '—' : o;
    option.selected = chosen.has(o);
    node.append(option);
  }
  return node;
}

/** A chart output with its builder controls. */
export class ChartRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    readonly options: IRenderMime.IRendererOptions,
    readonly context: IGridContext,
    readonly rendermime: IRenderMimeRegistry
  ) {
    super();
    this.addClass('jp-DataHub-chart');
    this.layout = new PanelLayout();
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const payload = model.data[CHART_MIMETYPE] as unknown as IChartPayload;
    const layout = this.layout as PanelLayout;
    while (layout.widgets.length) {
      layout.widgets[0].dispose();
    }
    const controls = new Widget({ node: this._controls(payload) });
    layout.addWidget(controls);
    const figure = model.data[PLOTLY_MIMETYPE];
    if (figure && this.rendermime.preferredMimeType({ [PLOTLY_MIMETYPE]: figure }, 'any')) {
      const plot = this.rendermime.createRenderer(PLOTLY_MIMETYPE);
      layout.addWidget(plot);
      await plot.renderModel(
        new MimeModel({ data: { [PLOTLY_MIMETYPE]: figure }, trusted: model.trusted })
      );
    }
  }

  private _controls(payload: IChartPayload): HTMLElement {
    const bar = document.createElement('div');
    bar.className = 'jp-DataHub-chartBuilder';
    const names = payload.columns.map(c => c.name);
    const spec = payload.spec;
    const kind = select('Chart kind', CHART_KINDS, spec.kind);
    const x = select('X axis', names, spec.x ?? '');
    const y = select('Y axis', names, spec.y, true);
    const color = select('Colour', ['', ...names], spec.color ?? '');
    const agg = select('Aggregation', ['', ...AGGREGATIONS], spec.agg ?? '');
    const status = document.createElement('span');
    status.className = 'jp-DataHub-chartStatus';
    status.setAttribute('role', 'status');
    const live = !!gridComm(this.context);
    const field = (label: string, control: HTMLElement): HTMLLabelElement => {
      const node = document.createElement('label');
      node.className = 'jp-DataHub-chartField';
      node.append(label, control);
      return node;
    };
    const controls = [kind, x, y, color, agg];
    for (const control of controls) {
      control.disabled = !live;
      control.title = live ? '' : 'Run the cell to change its chart';
      control.addEventListener('change', async () => {
        const choice: IChartChoice = {
          kind: kind.value,
          x: x.value || null,
          y: Array.from(y.selectedOptions).map(o => o.value),
          color: color.value || null,
          agg: agg.value || null
        };
        status.textContent = 'Drawing…';
        status.classList.remove('jp-mod-error');
        controls.forEach(c => (c.disabled = true));
        try {
          await drawChart(this.context, this.node, payload.result, choice);
          status.textContent = '';
        } catch (error) {
          status.textContent = error instanceof Error ? error.message : String(error);
          status.classList.add('jp-mod-error');
        } finally {
          controls.forEach(c => (c.disabled = false));
        }
      });
    }
    bar.append(
      field('Chart', kind),
      field('x', x),
      field('y', y),
      field('colour', color),
      field('aggregate', agg),
      status
    );
    return bar;
  }
}
