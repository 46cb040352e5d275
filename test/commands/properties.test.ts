// fast-check round trips for every type of the model (seeded, so failures reproduce).
import { describe, it } from "node:test";
import * as assert from "node:assert/strict";
import fc from "fast-check";
import * as codec from "../../src/commands/codec.js";
import * as A from "./arbitraries.js";

const params = { seed: 0x5eed, numRuns: 300 };

function roundTrip<T>(name: string, arb: fc.Arbitrary<T>, enc: (x: T) => Uint8Array, dec: (b: Uint8Array) => T, runs = params.numRuns): void {
  it(`${name}: decode(encode(x)) = x and the encoding is a fixpoint`, () => {
    fc.assert(
      fc.property(arb, (x) => {
        const b = enc(x);
        const y = dec(b);
        assert.deepEqual(y, x);
        assert.deepEqual(enc(y), b);
      }),
      { ...params, numRuns: runs },
    );
  });
}

describe("property round trips", () => {
  roundTrip("Wire", A.arbWire, codec.encodeWire, codec.decodeWire, 1000);
  roundTrip("Header", A.arbHeader, codec.encodeHeader, codec.decodeHeader);
  roundTrip("Command", A.arbCommand, codec.encodeCommand, codec.decodeCommand, 600);
  roundTrip("Success", A.arbSuccess, codec.encodeSuccess, codec.decodeSuccess, 600);
  roundTrip("Data", A.arbData, codec.encodeData, codec.decodeData);
  roundTrip("Policy", A.arbPolicy, codec.encodePolicy, codec.decodePolicy);
  roundTrip("UnikernelConfig", A.arbUnikernelConfig, codec.encodeUnikernelConfig, codec.decodeUnikernelConfig);
  roundTrip("UnikernelArguments", A.arbUnikernelArguments, codec.encodeUnikernelArguments, codec.decodeUnikernelArguments);
  roundTrip("UnikernelInfo", A.arbUnikernelInfo("v6"), codec.encodeUnikernelInfo, codec.decodeUnikernelInfo);
  roundTrip("CertExtension", A.arbCertExtension, codec.encodeCertExtension, codec.decodeCertExtension);
  roundTrip(
    "StatsData",
    A.arbStatsData.map((stats) => ({ kind: "statistics", stats }) as const),
    codec.encodeData,
    codec.decodeData,
  );
  roundTrip(
    "State",
    A.arbState,
    codec.encodeState,
    (b) => {
      const { state, version } = codec.decodeState(b);
      assert.equal(version, 6);
      return state;
    },
    200,
  );

  it("every payload and command kind is generated", () => {
    const kinds = new Set<string>();
    for (const w of fc.sample(A.arbWire, { seed: params.seed, numRuns: 3000 })) {
      const p = w.payload;
      kinds.add(p.kind === "command" ? `c:${p.command.kind}` : p.kind === "reply" ? `r:${p.reply.kind}` : p.kind === "data" ? `d:${p.data.kind}` : p.kind);
    }
    // 26 commands + 11 replies + 4 data + failure
    assert.equal(kinds.size, 26 + 11 + 4 + 1, [...kinds].sort().join(" "));
  });

  it("encoding canonicalises set-like fields of non-canonical values", () => {
    fc.assert(
      fc.property(A.arbUnikernelConfig, (c) => {
        const shuffled = { ...c, blockDevices: [...c.blockDevices].reverse(), bridges: [...c.bridges].reverse() };
        assert.deepEqual(codec.decodeUnikernelConfig(codec.encodeUnikernelConfig(shuffled)), c);
      }),
      params,
    );
  });
});
