import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConnectError } from "@connectrpc/connect";
import { ActiveCall, ActiveCalls } from "../src/engine/engine.js";

/** A call in flight with a name to tell it by; these tests only move it in and out of the list. */
class FakeCall extends ActiveCall {
  constructor(readonly name: string) {
    super();
  }
  abortCall(_reason: ConnectError): void {}
}

describe("the engine's calls in flight (ActiveCalls)", () => {
  it("lists the calls added and not deleted, whichever end they are deleted from", () => {
    const calls = new ActiveCalls();
    const [a, b, c, d] = ["a", "b", "c", "d"].map((name) => new FakeCall(name)) as [FakeCall, FakeCall, FakeCall, FakeCall];
    for (const call of [a, b, c, d]) calls.add(call);
    const names = () => calls.toArray().map((call) => (call as FakeCall).name).sort();
    assert.deepEqual(names(), ["a", "b", "c", "d"]);
    calls.delete(b); // in the middle
    assert.deepEqual(names(), ["a", "c", "d"]);
    calls.delete(d); // the newest
    assert.deepEqual(names(), ["a", "c"]);
    calls.delete(a); // the oldest
    assert.deepEqual(names(), ["c"]);
    calls.delete(a); // twice: left alone
    calls.delete(new FakeCall("never added"));
    assert.deepEqual(names(), ["c"]);
    calls.delete(c);
    assert.deepEqual(calls.toArray(), []);
  });

  it("clears a deleted call's links, so the list keeps nothing of it", () => {
    const calls = new ActiveCalls();
    const [a, b, c] = ["a", "b", "c"].map((name) => new FakeCall(name)) as [FakeCall, FakeCall, FakeCall];
    for (const call of [a, b, c]) calls.add(call);
    calls.delete(b);
    assert.equal(b.activePrevious, undefined);
    assert.equal(b.activeNext, undefined);
    calls.add(b); // a finished call's object is never re-added, but the list stays whole if it were
    assert.equal(calls.toArray().length, 3);
  });
});
