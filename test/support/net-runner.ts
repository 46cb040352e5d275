// Command-line front end to src/hostd/net.ts, for running its functions inside a
// network namespace (`ip netns exec <ns> node net-runner.js <op> ...`), since net.ts
// acts on the current namespace. Prints one JSON value on stdout; on error prints
// {"error": message, "upstream": text} and exits 1. Test support only.
//
//   create <bridge> [count]   createTap(bridge), `count` times concurrently -> [names]
//   destroy <tap>             destroyTap(tap) -> null
//   exists <name>             bridgeExists(name) -> boolean
//   bridges                   listBridges() -> [names]

import { bridgeExists, createTap, destroyTap, listBridges, NetError } from "../../src/hostd/net.js";

async function main(argv: string[]): Promise<unknown> {
  const [op, a, b] = argv;
  switch (op) {
    case "create": {
      const n = b === undefined ? 1 : Number(b);
      return Promise.all(Array.from({ length: n }, () => createTap(a!)));
    }
    case "destroy":
      await destroyTap(a!);
      return null;
    case "exists":
      return bridgeExists(a!);
    case "bridges":
      return listBridges();
    default:
      throw new Error(`unknown op ${String(op)}`);
  }
}

// Without arguments do nothing: `node --test dist/test/` also executes support modules.
if (process.argv.length > 2)
  main(process.argv.slice(2)).then(
    (v) => {
      process.stdout.write(JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x)) + "\n");
    },
    (e: unknown) => {
      const err = e as Error;
      process.stdout.write(JSON.stringify({ error: err.message, upstream: e instanceof NetError ? e.upstream : null }) + "\n");
      process.exitCode = 1;
    },
  );
