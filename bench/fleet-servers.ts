// The far side of fleet.bench.ts, in its own process (as the hosts of a fleet are other
// machines, their work is not the client's): N `Endpoint`s on 127.0.0.1, each in front of its
// own fake vmmd (a Unix socket answering info with one running unikernel, as hostd would).
//   node fleet-servers.js <dir with cacert.pem server.pem server.key> <N>
// Prints one JSON line {"ports": [...]} when all listen; runs until killed. Not a bench module.
import "reflect-metadata";
import { mkdirSync, readFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { decodeWire, encodeWire } from "../src/commands/codec.js";
import { encodeFrame, FrameDecoder } from "../src/commands/framing.js";
import type { Wire } from "../src/commands/types.js";
import { certificateFromDer, fromPemAll } from "../src/ca/x509.js";
import { Endpoint } from "../src/endpoint/server.js";
import { buildSolo5Elf } from "../test/support/elf-builder.js";
import { createHash } from "node:crypto";

const [dir, nText] = process.argv.slice(2) as [string, string];
const n = Number(nText);
const caPem = readFileSync(join(dir, "cacert.pem"), "utf8");
const image = buildSolo5Elf({ target: "hvt", devices: [], text: new TextEncoder().encode("bench") }).bytes;
const digest = new Uint8Array(createHash("sha256").update(image).digest());

function fakeVmmd(file: string): Promise<void> {
  const server = net.createServer((sock) => {
    const dec = new FrameDecoder({ maxFrame: 1 << 20 });
    sock.on("data", (c: Buffer) => {
      dec.push(new Uint8Array(c));
      for (let f = dec.next(); f !== null; f = dec.next()) {
        if (!(f instanceof Uint8Array)) continue;
        const req = decodeWire(f);
        const reply: Wire = {
          header: req.header,
          payload: {
            kind: "reply",
            reply: {
              kind: "unikernel-info",
              unikernels: [
                {
                  name: { path: [], label: "hello" },
                  info: {
                    typ: "solo5",
                    failBehaviour: { kind: "quit" },
                    cpuids: [0],
                    memory: 32,
                    digest,
                    blockDevices: [],
                    bridges: [],
                    started: new Date(Date.now() - 3600_000),
                    numcpus: 1,
                  },
                },
              ],
            },
          },
        };
        sock.write(encodeFrame(encodeWire(reply)));
      }
    });
    sock.on("error", () => undefined);
  });
  return new Promise((resolve) => server.listen(file, () => resolve()));
}

const ports: number[] = [];
for (let i = 0; i < n; i++) {
  const tmpdir = join(dir, `host${i}`);
  mkdirSync(join(tmpdir, "util"), { recursive: true });
  await fakeVmmd(join(tmpdir, "util", "vmmd.sock"));
  const ep = new Endpoint({
    ca: certificateFromDer(fromPemAll(caPem, "CERTIFICATE")[0]!),
    caPem,
    certPem: readFileSync(join(dir, "server.pem"), "utf8"),
    keyPem: readFileSync(join(dir, "server.key"), "utf8"),
    tmpdir,
    log: () => undefined,
    logLevel: "warn",
  });
  ports.push((await ep.listen("127.0.0.1", 0)).port);
}
process.stdout.write(`${JSON.stringify({ ports, image: Buffer.from(image).toString("base64") })}\n`);
