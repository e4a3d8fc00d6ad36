import assert from "node:assert/strict";
import { test } from "node:test";
import { writeKey } from "./audit.js";
import { PostgresPrimaryReader, PRIMARY_QUERY } from "./primary.js";

const databases = ["us-east", "eu-west"].map((region, i) => ({
  id: `cell-0/${region}`,
  cell: "cell-0",
  region,
  zone: `${region}/a`,
  host: `127.0.${10 + i}.10`,
  port: 20_000 + i,
  applicationName: `cell_0_${region}`,
}));

test("reads the batch from the cell's current primary in one query, matching exact (tenant, id) pairs", async () => {
  const calls: { host: string; port: number; sql: string; params: unknown[] }[] = [];
  const reader = new PostgresPrimaryReader({
    databases,
    primaries: async () => new Map([["cell-0", "eu-west"]]),
    query: async (host, port, sql, params) => {
      calls.push({ host, port, sql, params });
      return [{ tenant: "a", id: "1", name: "n", email: "e@x" }];
    },
  });
  const rows = await reader.read("cell-0", [
    { tenant: "a", id: "1" },
    { tenant: "b", id: "2" },
  ]);
  assert.deepEqual([...rows], [[writeKey("a", "1"), { name: "n", email: "e@x" }]]);
  assert.deepEqual(calls, [
    {
      host: "127.0.11.10",
      port: 20_001,
      sql: PRIMARY_QUERY,
      params: [
        ["a", "b"],
        ["1", "2"],
      ],
    },
  ]);
});

test("after a failed read the primary is asked for again (a failover may have moved it); no table means nothing stored", async () => {
  let primary = "us-east";
  let asked = 0;
  const reader = new PostgresPrimaryReader({
    databases,
    primaries: async () => {
      asked++;
      return new Map([["cell-0", primary]]);
    },
    query: async (host) => {
      if (host === "127.0.10.10") throw new Error("connection refused");
      throw Object.assign(new Error('relation "users" does not exist'), { code: "42P01" });
    },
  });
  await assert.rejects(
    reader.read("cell-0", [{ tenant: "a", id: "1" }]),
    /cell-0's primary in us-east .*refused/,
  );
  primary = "eu-west";
  assert.equal((await reader.read("cell-0", [{ tenant: "a", id: "1" }])).size, 0);
  assert.ok(asked >= 3);
  await assert.rejects(reader.read("cell-9", []), /knows no cell cell-9/);
});
