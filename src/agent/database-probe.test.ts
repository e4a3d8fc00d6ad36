import assert from "node:assert/strict";
import { test } from "node:test";
import { timelineOfWalFile } from "./database-probe.js";

test("the timeline is read from a WAL file name, and nothing else passes for one", () => {
  assert.equal(timelineOfWalFile("000000020000000000000003"), 2);
  assert.equal(timelineOfWalFile("0000001A00000001000000FF"), 26);
  assert.equal(timelineOfWalFile(null), null);
  assert.equal(timelineOfWalFile("00000002.history"), null);
  assert.equal(timelineOfWalFile(""), null);
});
