// writeFramedPieces over a real Unix socket: the bytes that arrive are exactly one frame of
// encodeWire's output, for a create whose image is handed over as a piece of its own, and for
// a small message.
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { encodeWire, encodeWirePieces } from "../../src/commands/codec.js";
import { encodeFrame } from "../../src/commands/framing.js";
import type { UnikernelConfig, Wire } from "../../src/commands/types.js";
import { writeFramedPieces } from "../../src/transport/chunks.js";

const create = (image: Uint8Array): Wire => ({
  header: { version: 5, sequence: 7n, name: { path: ["a"], label: "b" } },
  payload: {
    kind: "command",
    command: {
      kind: "unikernel-create",
      config: {
        typ: "solo5",
        compressed: true,
        image,
        failBehaviour: { kind: "quit" },
        cpuids: [0],
        memory: 32,
        blockDevices: [],
        bridges: [],
        numcpus: 1,
        addName: true,
      } as UnikernelConfig,
    },
  },
});

async function received(pieces: Uint8Array[]): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "dromedary-chunks-"));
  const path = join(dir, "s.sock");
  try {
    const got = new Promise<Buffer>((resolve) => {
      const server = net.createServer((c) => {
        const parts: Buffer[] = [];
        c.on("data", (b: Buffer) => parts.push(b));
        c.on("end", () => {
          server.close();
          resolve(Buffer.concat(parts));
        });
      });
      server.listen(path);
    });
    await new Promise((r) => setImmediate(r));
    const sock = net.connect(path);
    await new Promise((r) => sock.once("connect", r));
    await writeFramedPieces(sock, pieces, 5000);
    sock.end();
    return await got;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("writeFramedPieces", () => {
  it("a 3 MiB image as a piece of its own: one frame, byte for byte encodeWire's", async () => {
    const image = randomBytes(3 << 20);
    const w = create(image);
    const pieces = encodeWirePieces(w, 64 * 1024);
    assert.ok(pieces.length >= 2 && pieces.some((p) => p === image || (p.buffer === image.buffer && p.length === image.length)), "the image is not copied");
    assert.deepEqual(await received(pieces), Buffer.from(encodeFrame(encodeWire(w))));
  });

  it("a small message: one frame, as writeChunk writes it", async () => {
    const w = create(Uint8Array.of(1, 2, 3));
    const pieces = encodeWirePieces(w, 64 * 1024);
    assert.equal(pieces.length, 1);
    assert.deepEqual(await received(pieces), Buffer.from(encodeFrame(encodeWire(w))));
    const split = [encodeWire(w).subarray(0, 5), encodeWire(w).subarray(5)];
    assert.deepEqual(await received(split), Buffer.from(encodeFrame(encodeWire(w))));
  });
});
