import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort } from "../lib/ports.js";
import { queryOnce } from "../lib/postgres.js";
import { startTestCluster, type TestCluster, type TestInstance } from "../lib/postgres-testing.js";
import { type DirectoryHandle, startDirectory } from "./directory.js";
import { type FallbackHandle, startFallback } from "./fallback.js";
import {
  type Answer,
  call,
  dbUrl,
  exited,
  jsonLines,
  reap,
  SECRET_HEX,
  testDirectoryConfig,
  waitFor,
} from "./testing.js";

const here = dirname(fileURLToPath(import.meta.url));

let cluster: TestCluster;
let primary: TestInstance;
let standby: TestInstance;
let directory: DirectoryHandle | undefined;
let fallback: FallbackHandle | undefined;
let token = "";
let ada: unknown;

before(async () => {
  cluster = await startTestCluster({ standbys: 1, syncQuorum: 1 });
  primary = cluster.primary;
  standby = cluster.standbys[0] as TestInstance;
  const config = testDirectoryConfig(primary, standby);
  directory = await startDirectory(config, { log: () => {} });
  const d = directory;
  await waitFor(() => d.schemaApplied, "the schema to be applied", 20_000);
  const { databaseWriteUrl: _unused, ...fallbackConfig } = config;
  fallback = await startFallback(fallbackConfig, { log: () => {} });

  const put = await call(d.url, "PUT", "/users/ada", {
    tenant: "acme",
    body: { name: "Ada", email: "ada@example.com" },
  });
  assert.equal(put.status, 200);
  ada = put.json.user;
  // Make sure the replica has replayed the write before the fallback is asked about it.
  const read = await call(d.url, "GET", "/users/ada", {
    tenant: "acme",
    headers: { "X-Ringfence-Min-LSN": put.json.lsn },
  });
  assert.equal(read.headers.get("x-ringfence-served-from"), "replica");
  const signed = await call(d.url, "POST", "/tokens", { tenant: "acme", body: { userId: "ada" } });
  assert.equal(signed.status, 201);
  token = signed.json.token;
});

after(async () => {
  try {
    await fallback?.close();
    await directory?.close();
  } finally {
    await cluster?.stop();
  }
});

const fb = () => (fallback as FallbackHandle).url;
const marked = (a: Answer) => {
  assert.equal(a.headers.get("x-ringfence-fallback"), "1", "every fallback answer is marked");
  return a;
};
const verify = async (t: string, tenant = "acme") =>
  marked(await call(fb(), "GET", "/tokens/verify", { tenant, headers: { Authorization: `Bearer ${t}` } }));

test("the fallback verifies the service's tokens and reads users from the replica", async () => {
  const ok = await verify(token);
  assert.equal(ok.status, 200);
  assert.equal(ok.json.valid, true);
  assert.equal(ok.json.userId, "ada");
  assert.equal(ok.json.tenant, "acme");

  const tampered = await verify(`${token.slice(0, 5)}${token[5] === "x" ? "y" : "x"}${token.slice(6)}`);
  assert.equal(tampered.status, 401);
  assert.equal(tampered.json.error.code, "TOKEN_INVALID");
  assert.equal((await verify(token, "globex")).status, 403);
  assert.equal(marked(await call(fb(), "GET", "/tokens/verify", { tenant: "acme" })).status, 401);

  const user = marked(await call(fb(), "GET", "/users/ada", { tenant: "acme" }));
  assert.equal(user.status, 200);
  assert.deepEqual(user.json.user, ada);
  assert.equal(user.headers.get("x-ringfence-served-from"), "replica");
  const missing = marked(await call(fb(), "GET", "/users/nobody", { tenant: "acme" }));
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, "USER_NOT_FOUND");
  const badTenant = marked(await call(fb(), "GET", "/users/ada", { tenant: "no spaces" }));
  assert.equal(badTenant.status, 400);
  assert.match(badTenant.json.error.message, /X-Tenant/);
  assert.equal(marked(await call(fb(), "GET", "/nope")).status, 404);

  const health = marked(await call(fb(), "GET", "/healthz"));
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, {
    status: "ok",
    region: "eu-west",
    zone: "eu-west-a",
    cell: "cell-1",
    version: "test",
    replica: "ok",
    fallback: true,
  });
});

test("the fallback refuses every write with 405 READ_ONLY_FALLBACK", async () => {
  for (const [method, path] of [
    ["PUT", "/users/ada"],
    ["POST", "/tokens"],
    ["DELETE", "/users/ada"],
    ["PATCH", "/users/ada"],
    ["POST", "/anything"],
  ] as const) {
    const refused = marked(await call(fb(), method, path, { tenant: "acme", body: { userId: "ada" } }));
    assert.equal(refused.status, 405, `${method} ${path}`);
    assert.equal(refused.json.error.code, "READ_ONLY_FALLBACK");
    assert.equal(typeof refused.json.error.message, "string");
  }
});

test("the fallback never touches the primary and keeps answering once the primary is gone", async () => {
  const onPrimary = await queryOnce<{ n: string }>(
    primary.host,
    primary.port,
    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'ringfence-fallback'",
  );
  assert.equal(Number(onPrimary[0]?.n), 0, "no fallback connection on the primary");
  const onReplica = await queryOnce<{ n: string }>(
    standby.host,
    standby.port,
    "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'ringfence-fallback'",
  );
  assert.ok(Number(onReplica[0]?.n) > 0, "the fallback's connections are on the replica");

  await directory?.close();
  const gone = new Promise((resolve) => primary.process.once("exit", resolve));
  primary.process.kill("SIGQUIT");
  await gone;

  assert.equal((await verify(token)).status, 200);
  const user = marked(await call(fb(), "GET", "/users/ada", { tenant: "acme" }));
  assert.equal(user.status, 200);
  assert.deepEqual(user.json.user, ada);
  assert.equal(marked(await call(fb(), "GET", "/healthz")).status, 200);
});

test("the fallback program runs from its environment, ignores DATABASE_WRITE_URL, exits 0 on SIGTERM", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, "fallback.js")], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      RINGFENCE_REGION: "eu-west",
      RINGFENCE_ZONE: "eu-west-c",
      RINGFENCE_CELL: "cell-1",
      DATABASE_URL: dbUrl(standby),
      DATABASE_WRITE_URL: dbUrl(primary), // the primary is down by now; the fallback must not care
      RINGFENCE_TOKEN_SECRET: SECRET_HEX,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    const out = jsonLines(child);
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    await waitFor(
      () => out.events.some((e) => e.event === "fallback.started") || child.exitCode !== null,
      "the started event",
    );
    assert.equal(child.exitCode, null, stderr);
    const base = `http://127.0.0.1:${port}`;
    const health = marked(await call(base, "GET", "/healthz"));
    assert.equal(health.status, 200);
    assert.equal(health.json.version, "dev");
    const user = marked(await call(base, "GET", "/users/ada", { tenant: "acme" }));
    assert.equal(user.status, 200);
    child.kill("SIGTERM");
    assert.equal(await exited(child), 0, stderr);
    assert.deepEqual(
      out.events.map((e) => e.event),
      ["fallback.started", "fallback.stopping", "fallback.stopped"],
    );
  } finally {
    await reap(child);
  }
});
