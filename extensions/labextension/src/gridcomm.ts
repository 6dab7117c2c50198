/**
 * The result grid's connection to the kernel: one Jupyter comm (target `datahub.grid`,
 * registered by the `%%sql` magic's kernel side, `datahub/extensions/grid.py`) per kernel,
 * carrying numbered requests and their answers. Downloads arrive as binary chunks that
 * become a Blob: the file never exists as JavaScript strings.
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

export const COMM_TARGET = 'datahub.grid';

/** An answer the kernel sent (`ok` false: `error` is a sentence for the user). */
export interface IAnswer extends JSONObject {
  request: number;
  ok: boolean;
}

/** A request the grid could not get answered. */
export class GridRequestError extends Error {}

interface IPending {
  resolve: (answer: JSONObject) => void;
  reject: (error: Error) => void;
  chunks?: Uint8Array<ArrayBuffer>[];
}

/** Numbered requests over one comm to one kernel. */
export class GridComm {
  constructor(readonly kernel: Kernel.IKernelConnection) {
    this._comm = kernel.createComm(COMM_TARGET);
    this._comm.onMsg = msg => this._received(msg);
    this._comm.onClose = () => this._closed('The kernel closed the grid’s connection.');
    this._comm.open({});
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Ask the kernel; the answer's fields (beyond `request` and `ok`). */
  request(data: JSONObject): Promise<JSONObject> {
    if (this._disposed) {
      return Promise.reject(new GridRequestError('The kernel is gone; run the cell again.'));
    }
    const request = ++this._next;
    return new Promise((resolve, reject) => {
      this._pending.set(request, { resolve, reject });
      this._comm.send({ ...data, request });
    });
  }

  /** A download: the chunks the kernel sends, joined as a Blob, and the file name. */
  download(data: JSONObject): Promise<{ blob: Blob; name: string }> {
    if (this._disposed) {
      return Promise.reject(new GridRequestError('The kernel is gone; run the cell again.'));
    }
    const request = ++this._next;
    return new Promise((resolve, reject) => {
      const chunks: Uint8Array<ArrayBuffer>[] = [];
      this._pending.set(request, {
        chunks,
        reject,
        resolve: answer => {
          const mime = String(answer.mime ?? 'application/octet-stream');
          resolve({ blob: new Blob(chunks, { type: mime }), name: String(answer.name) });
        }
      });
      this._comm.send({ ...data, op: 'download', request });
    });
  }

  dispose(): void {
    if (!this._disposed) {
      this._closed('The grid was closed.');
      this._comm.close();
    }
  }

  private _received(msg: KernelMessage.ICommMsgMsg): void {
    const answer = msg.content.data as IAnswer;
    const pending = this._pending.get(answer.request);
    if (!pending) {
      return;
    }
    if (!answer.ok) {
      this._pending.delete(answer.request);
      pending.reject(new GridRequestError(String(answer.error ?? 'The kernel could not answer.')));
      return;
    }
    if (pending.chunks && answer.last === false) {
      for (const buffer of msg.buffers ?? []) {
        // The message's buffers are DataViews (or ArrayBuffers); the Blob copies the bytes.
        pending.chunks.push(
          ArrayBuffer.isView(buffer)
            ? new Uint8Array(buffer.buffer as ArrayBuffer, buffer.byteOffset, buffer.byteLength)
            : new Uint8Array(buffer as ArrayBuffer)
        );
      }
      return;
    }
    this._pending.delete(answer.request);
    pending.resolve(answer);
  }

  private _closed(reason: string): void {
    this._disposed = true;
    for (const pending of this._pending.values()) {
      pending.reject(new GridRequestError(reason));
    }
    this._pending.clear();
  }

  private _comm: Kernel.IComm;
  private _next = 0;
  private _disposed = false;
  private _pending = new Map<number, IPending>();
}

/** One comm per kernel, made when first needed and again after a restart. */
export class GridConnections {
  get(kernel: Kernel.IKernelConnection | null | undefined): GridComm | null {
    if (!kernel || kernel.isDisposed) {
      return null;
    }
    let comm = this._comms.get(kernel.id);
    if (!comm || comm.isDisposed || comm.kernel !== kernel) {
      comm = new GridComm(kernel);
      this._comms.set(kernel.id, comm);
      kernel.disposed.connect(() => {
        comm?.dispose();
        this._comms.delete(kernel.id);
      });
    }
    return comm;
  }

  private _comms = new Map<string, GridComm>();
}
