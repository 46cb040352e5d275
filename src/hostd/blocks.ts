// The block device commands (daemon.md §2.11), the shell's side: the core (vmmd.ts) decided
// what to do (a Step), the files are blockstore.ts'; this runs the step under hostd's global
// lock (released as soon as the files are done with) and sends the reply.
import { promisify } from "node:util";
import * as zlib from "node:zlib";
import type { Socket } from "node:net";
import { encodeWire } from "../commands/codec.js";
import type { Header } from "../commands/types.js";
import type { Name } from "../core/name.js";
import { findBlock } from "../policy/resources.js";
import {
  blockFile,
  blockFileExists,
  commitUpload,
  createBlockFile,
  createUploadFile,
  drainChunks,
  readBlockFile,
  receiveBlockStream,
  removeBlockFile,
  streamBlockFile,
  writeBlockData,
} from "./blockstore.js";
import { writeFrame, type FrameReader } from "../transport/requests.js";
import { blockAdded, blockRemoved, failure, success, successString, TEXT, type Outcome, type Step, type VmmdState } from "./vmmd.js";
import { promises as fsp } from "node:fs";

const MB = 1 << 20;
const deflateAsync = promisify(zlib.deflate);

/** What the block commands need of the daemon (daemon.ts). */
export interface BlockHost {
  state: VmmdState;
  readonly dbdir: string;
  /** --idle-timeout: an upload stalling this long ends */
  readonly idleMs: number;
  /** take the global lock again (the release function) */
  lock(): Promise<() => void>;
  send(sock: Socket, header: Header, o: Outcome): Promise<boolean>;
}

export type BlockStep = Extract<Step, { readonly kind: "block-add" | "block-remove" | "block-set" | "block-set-old" | "block-dump" }>;

/** Run a block command's step (the lock held; `unlock` releases it); the connection is done after it. */
export async function runBlockStep(h: BlockHost, step: BlockStep, sock: Socket, reader: FrameReader, header: Header, unlock: () => void): Promise<false> {
  switch (step.kind) {
    case "block-add": {
      const c = await createBlockFile(h.dbdir, step.name, step.size);
      if (!c.ok) {
        unlock();
        await h.send(sock, header, failure(c.error));
        return false;
      }
      if (step.data !== undefined && step.data.bytes.length > 0) {
        // a failed write (a full disk, too much data) leaves no device behind
        const wr = await writeBlockData(blockFile(h.dbdir, step.name), step.data, step.size * MB);
        if (!wr.ok) {
          await removeBlockFile(h.dbdir, step.name);
          unlock();
          await h.send(sock, header, failure(wr.error));
          return false;
        }
      }
      const r = blockAdded(h.state, step.name, step.size);
      if (r.ok) h.state = r.value;
      unlock();
      await h.send(sock, header, r.ok ? successString(TEXT.addedBlock) : failure(r.error));
      return false;
    }
    case "block-remove": {
      const rm = await removeBlockFile(h.dbdir, step.name);
      if (!rm.ok) {
        unlock();
        await h.send(sock, header, failure(rm.error));
        return false;
      }
      const r = blockRemoved(h.state, step.name);
      if (r.ok) h.state = r.value;
      unlock();
      await h.send(sock, header, r.ok ? successString(TEXT.removedBlock) : failure(r.error));
      return false;
    }
    case "block-set": {
      // The upload goes to a temporary file (blockstore.ts), read with the lock released;
      // it replaces the device's file under the lock, if the device is still there and
      // unused. A failed upload changes nothing.
      const tmp = await createUploadFile(h.dbdir, step.name);
      unlock();
      const upload = uploadSource(h, reader);
      let result: string | null;
      if (!tmp.ok) {
        // drain the upload, then report
        result = (await drainChunks(upload)) ?? tmp.error;
      } else {
        result = await receiveBlockStream(tmp.value, step.size * MB, step.compressed, upload);
        if (result === null) {
          const release = await h.lock();
          try {
            result = await commitBlockUpload(h, tmp.value, step.name);
          } finally {
            release();
          }
        }
        if (result !== null) await fsp.rm(tmp.value, { force: true }).catch(() => undefined);
      }
      await h.send(sock, header, result === null ? successString(TEXT.setBlock) : failure(result));
      return false;
    }
    case "block-set-old": {
      const tmp = await createUploadFile(h.dbdir, step.name);
      let out: Outcome = successString(TEXT.setBlock);
      if (!tmp.ok) out = failure(tmp.error);
      else {
        const wr = await writeBlockData(tmp.value, step.data, step.size * MB);
        const c = wr.ok ? await commitBlockUpload(h, tmp.value, step.name) : wr.error;
        if (c !== null) {
          out = failure(c);
          await fsp.rm(tmp.value, { force: true }).catch(() => undefined);
        }
      }
      unlock();
      await h.send(sock, header, out);
      return false;
    }
    case "block-dump": {
      if (!(await blockFileExists(h.dbdir, step.name))) {
        unlock();
        await h.send(sock, header, failure(TEXT.fileMissing));
        return false;
      }
      if (step.old) {
        const data = await readBlockFile(h.dbdir, step.name);
        unlock();
        if (!data.ok) await h.send(sock, header, failure(data.error));
        else {
          const compressed = step.level !== 0;
          const image = compressed ? await deflateAsync(data.value, { level: Math.max(1, Math.min(9, step.level)) }) : data.value;
          await h.send(sock, header, success({ kind: "old-block-device-image", compressed, image }));
        }
        return false;
      }
      unlock();
      await h.send(sock, header, success({ kind: "block-device-image", compressed: step.level !== 0 }));
      const outcome = await streamBlockFile(blockFile(h.dbdir, step.name), step.level, (piece) =>
        writeFrame(sock, encodeWire({ header, payload: { kind: "data", data: { kind: "block-data", data: piece } } })),
      );
      if (outcome === "done") await writeFrame(sock, encodeWire({ header, payload: { kind: "data", data: { kind: "block-end" } } }));
      else if (outcome === "read-error") await h.send(sock, header, failure(TEXT.streamingError));
      return false;
    }
  }
}

/** Under the lock: the finished upload `tmp` becomes the block device's file; null or the failure. */
async function commitBlockUpload(h: BlockHost, tmp: string, name: Name): Promise<string | null> {
  const b = findBlock(h.state.resources, name);
  if (b === undefined) return TEXT.setNotFound; // removed during the upload
  if (b.active) return TEXT.setInUse; // taken by a unikernel during the upload
  const c = await commitUpload(tmp, h.dbdir, name, b.size * MB);
  return c.ok ? null : c.error;
}

/** The chunks of a block upload; one that stalls for --idle-timeout ends it with `error while reading stream`. */
function uploadSource(h: BlockHost, reader: FrameReader): { next(): Promise<Uint8Array | null> } {
  return { next: () => reader.next(h.idleMs) };
}
