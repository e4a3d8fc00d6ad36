import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { freePort } from "../lib/ports.js";
import { queryOnce, signalGroup } from "../lib/postgres.js";
import { startTestCluster, type TestCluster, type TestInstance } from "../lib/postgres-testing.js";
import { type DirectoryHandle, startDirectory } from "./directory.js";
import { type LogEvent, MIGRATIONS, SchemaMigrator } from "./directory-schema.js";
import {
  call,
  dbUrl,
  exited,
  jsonLines,
  reap,
  SECRET_HEX,
  startForwarder,
  testDirectoryConfig,
  waitFor,
} from "./testing.js";

const here = dirname(fileURLToPath(import.meta.url));
const LSN = /^[0-9A-F]+\/[0-9A-F]+$/;

let cluster: TestCluster;
let primary: TestInstance;
let standby: TestInstance;
let dir: DirectoryHandle | undefined;
const events: LogEvent[] = [];

before(async () => {
  cluster = await startTestCluster({ standbys: 1, syncQuorum: 1 });
  primary = cluster.primary;
  standby = cluster.standbys[0] as TestInstance;
  dir = await startDirectory(testDirectoryConfig(primary, standby), { log: (e) => events.push(e) });
  const d = dir;
  await waitFor(() => d.schemaApplied, "the schema to be applied", 20_000);
});

after(async () => {
  try {
    await dir?.close();
  } finally {
    await cluster?.stop();
  }
});

const base = () => (dir as DirectoryHandle).url;
const primaryCount = async (sql: string, params: unknown[]) =>
  Number((await queryOnce<{ n: string }>(primary.host, primary.port, sql, params))[0]?.n);

test("PUT is an idempotent upsert and GET reads it back from the replica with the commit LSN", async () => {
  const put = () =>
    call(base(), "PUT", "/users/ada", { tenant: "acme", body: { name: "Ada", email: "ada@example.com" } });
  const first = await put();
  const second = await put();
  assert.equal(first.status, 200, JSON.stringify(first.json));
  assert.equal(second.status, 200);
  assert.deepEqual(second.json.user, first.json.user, "the same PUT twice gives the same user");
  assert.deepEqual(first.json.user.name, "Ada");
  assert.equal(first.json.user.tenant, "acme");
  assert.match(second.json.lsn, LSN);
  assert.equal(second.headers.get("x-ringfence-commit-lsn"), second.json.lsn);
  assert.equal(
    await primaryCount("SELECT count(*) AS n FROM users WHERE tenant = $1 AND id = $2", ["acme", "ada"]),
    1,
  );

  const got = await call(base(), "GET", "/users/ada", {
    tenant: "acme",
    headers: { "X-Ringfence-Min-LSN": second.json.lsn },
  });
  assert.equal(got.status, 200);
  assert.equal(got.headers.get("x-ringfence-served-from"), "replica");
  assert.deepEqual(got.json.user, first.json.user);

  const changed = await call(base(), "PUT", "/users/ada", {
    tenant: "acme",
    body: { name: "Ada Lovelace", email: "ada@example.com" },
  });
  assert.equal(changed.json.user.name, "Ada Lovelace");
  assert.equal(changed.json.user.createdAt, first.json.user.createdAt);
  assert.ok(changed.json.user.updatedAt >= first.json.user.updatedAt);

  const elsewhere = await call(base(), "GET", "/users/ada", { tenant: "globex" });
  assert.equal(elsewhere.status, 404, "tenants do not see each other's users");
  assert.equal(elsewhere.json.error.code, "USER_NOT_FOUND");
});

test("a user the replica has not replayed yet is read from the primary", async () => {
  await queryOnce(standby.host, standby.port, "SELECT pg_wal_replay_pause()");
  let lsn: string;
  try {
    const put = await call(base(), "PUT", "/users/grace", {
      tenant: "acme",
      body: { name: "Grace", email: "grace@example.com" },
    });
    assert.equal(put.status, 200, "a commit waits for the standby's flush, not its replay");
    lsn = put.json.lsn;
    await queryOnce(
      primary.host,
      primary.port,
      "INSERT INTO users (tenant, id, name, email) VALUES ('acme', 'hopper', 'Hopper', 'h@example.com')",
    );

    const withLsn = await call(base(), "GET", "/users/grace", {
      tenant: "acme",
      headers: { "X-Ringfence-Min-LSN": lsn },
    });
    assert.equal(withLsn.status, 200);
    assert.equal(withLsn.headers.get("x-ringfence-served-from"), "primary", "replay did not reach the LSN");
    assert.equal(withLsn.json.user.name, "Grace");

    const direct = await call(base(), "GET", "/users/hopper", { tenant: "acme" });
    assert.equal(direct.status, 200, "absent from the replica, present on the primary");
    assert.equal(direct.headers.get("x-ringfence-served-from"), "primary");

    const nobody = await call(base(), "GET", "/users/nobody", { tenant: "acme" });
    assert.equal(nobody.status, 404);
    assert.equal(nobody.headers.get("x-ringfence-served-from"), "primary");
  } finally {
    await queryOnce(standby.host, standby.port, "SELECT pg_wal_replay_resume()");
  }
  const replayed = await call(base(), "GET", "/users/grace", {
    tenant: "acme",
    headers: { "X-Ringfence-Min-LSN": lsn },
  });
  assert.equal(replayed.headers.get("x-ringfence-served-from"), "replica");
});

test("sign-in issues a token that verifies for its tenant only; an unknown user records nothing", async () => {
  await call(base(), "PUT", "/users/alice", {
    tenant: "acme",
    body: { name: "Alice", email: "a@example.com" },
  });
  const signIns = () =>
    primaryCount("SELECT count(*) AS n FROM sign_ins WHERE tenant = $1 AND user_id = $2", ["acme", "alice"]);
  const before = await signIns();
  const signed = await call(base(), "POST", "/tokens", { tenant: "acme", body: { userId: "alice" } });
  assert.equal(signed.status, 201, JSON.stringify(signed.json));
  assert.equal(typeof signed.json.token, "string");
  assert.ok(Date.parse(signed.json.expiresAt) > Date.now());
  assert.equal(await signIns(), before + 1, "the sign-in is committed before the answer");

  const token: string = signed.json.token;
  const verify = (t: string, tenant = "acme") =>
    call(base(), "GET", "/tokens/verify", { tenant, headers: { Authorization: `Bearer ${t}` } });
  const ok = await verify(token);
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, {
    valid: true,
    tenant: "acme",
    userId: "alice",
    expiresAt: signed.json.expiresAt,
  });

  const i = Math.floor(token.indexOf(".") / 2);
  const tampered = token.slice(0, i) + (token[i] === "A" ? "B" : "A") + token.slice(i + 1);
  const bad = await verify(tampered);
  assert.equal(bad.status, 401);
  assert.equal(bad.json.error.code, "TOKEN_INVALID");

  const other = await verify(token, "globex");
  assert.equal(other.status, 403);
  assert.equal(other.json.error.code, "TENANT_MISMATCH");

  const none = await call(base(), "GET", "/tokens/verify", { tenant: "acme" });
  assert.equal(none.status, 401);
  assert.equal(none.json.error.code, "UNAUTHENTICATED");

  const ghost = await call(base(), "POST", "/tokens", { tenant: "acme", body: { userId: "ghost" } });
  assert.equal(ghost.status, 404);
  assert.equal(ghost.json.error.code, "USER_NOT_FOUND");
  assert.equal(
    await primaryCount("SELECT count(*) AS n FROM sign_ins WHERE user_id = $1", ["ghost"]),
    0,
    "a failed sign-in records nothing",
  );
});

test("bad input is refused with 400/413 naming the field; unknown routes 404, wrong methods 405", async () => {
  const user = { name: "Bob", email: "bob@example.com" };
  const expectError = async (
    answer: Promise<Awaited<ReturnType<typeof call>>>,
    status: number,
    code: string,
    field?: string,
  ) => {
    const a = await answer;
    assert.equal(a.status, status, JSON.stringify(a.json));
    assert.equal(a.json.error.code, code);
    assert.equal(typeof a.json.error.message, "string");
    if (field) {
      assert.equal(a.json.error.field, field);
      assert.ok(a.json.error.message.includes(field), `${a.json.error.message} names ${field}`);
    }
    return a;
  };
  await expectError(call(base(), "PUT", "/users/bob", { body: user }), 400, "INVALID_TENANT", "X-Tenant");
  for (const tenant of ["bad tenant", "x".repeat(129), "", "ac/me"]) {
    await expectError(
      call(base(), "PUT", "/users/bob", { tenant, body: user }),
      400,
      "INVALID_TENANT",
      "X-Tenant",
    );
  }
  for (const id of ["bad%20id", "", "x".repeat(129), "%E0%A4%A"]) {
    await expectError(
      call(base(), "PUT", `/users/${id}`, { tenant: "acme", body: user }),
      400,
      "INVALID_ID",
      "id",
    );
  }
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: { name: "x".repeat(70_000), email: "b@x" } }),
    413,
    "BODY_TOO_LARGE",
  );
  // Without Content-Length the limit is enforced while reading.
  const streamed = await new Promise<number>((resolve, reject) => {
    const url = new URL(`${base()}/users/bob`);
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "PUT",
        headers: { "X-Tenant": "acme" },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.write(`{"name": "${"x".repeat(40_000)}`);
    req.end(`${"x".repeat(40_000)}", "email": "b@x"}`);
  });
  assert.equal(streamed, 413);
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: "{nope" }),
    400,
    "MALFORMED_JSON",
  );
  await expectError(call(base(), "PUT", "/users/bob", { tenant: "acme", body: "" }), 400, "MALFORMED_JSON");
  await expectError(call(base(), "PUT", "/users/bob", { tenant: "acme", body: [] }), 400, "INVALID_BODY");
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: { email: "b@x" } }),
    400,
    "INVALID_BODY",
    "name",
  );
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: { name: "Bob" } }),
    400,
    "INVALID_BODY",
    "email",
  );
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: { name: "Bob", email: "no-at" } }),
    400,
    "INVALID_BODY",
    "email",
  );
  await expectError(
    call(base(), "PUT", "/users/bob", { tenant: "acme", body: { name: "x".repeat(201), email: "b@x" } }),
    400,
    "INVALID_BODY",
    "name",
  );
  await expectError(
    call(base(), "POST", "/tokens", { tenant: "acme", body: {} }),
    400,
    "INVALID_ID",
    "userId",
  );
  await expectError(
    call(base(), "GET", "/users/bob", { tenant: "acme", headers: { "X-Ringfence-Min-LSN": "soon" } }),
    400,
    "INVALID_LSN",
    "X-Ringfence-Min-LSN",
  );
  await expectError(call(base(), "GET", "/nope", { tenant: "acme" }), 404, "NOT_FOUND");
  await expectError(call(base(), "GET", "/users/a/b", { tenant: "acme" }), 404, "NOT_FOUND");
  const wrong = await expectError(
    call(base(), "DELETE", "/users/bob", { tenant: "acme" }),
    405,
    "METHOD_NOT_ALLOWED",
  );
  assert.equal(wrong.headers.get("allow"), "GET, PUT");
  await expectError(call(base(), "GET", "/tokens", { tenant: "acme" }), 405, "METHOD_NOT_ALLOWED");
  await expectError(call(base(), "POST", "/healthz"), 405, "METHOD_NOT_ALLOWED");
  assert.equal(
    await primaryCount("SELECT count(*) AS n FROM users WHERE id = $1", ["bob"]),
    0,
    "no refused request wrote anything",
  );
});

test("/healthz reports where the instance runs and whether its databases answer", async () => {
  const health = await call(base(), "GET", "/healthz");
  assert.equal(health.status, 200);
  assert.deepEqual(health.json, {
    status: "ok",
    region: "eu-west",
    zone: "eu-west-a",
    cell: "cell-1",
    version: "test",
    replica: "ok",
    primary: "ok",
  });

  const deadReplica = { host: "127.0.0.1", port: await freePort() };
  const blind = await startDirectory(testDirectoryConfig(primary, deadReplica), { log: () => {} });
  try {
    const down = await call(blind.url, "GET", "/healthz");
    assert.equal(down.status, 503);
    assert.equal(down.json.status, "unavailable");
    assert.equal(down.json.replica, "unreachable");
    assert.equal(down.json.primary, "ok");
    const read = await call(blind.url, "GET", "/users/ada", { tenant: "acme" });
    assert.equal(read.status, 200, "a read the replica cannot answer goes to the primary");
    assert.equal(read.headers.get("x-ringfence-served-from"), "primary");
  } finally {
    await blind.close();
  }
});

test("migrations run once when two instances start at the same time", async () => {
  await queryOnce(primary.host, primary.port, "CREATE DATABASE concurrent");
  const logs: LogEvent[] = [];
  const config = testDirectoryConfig(primary, standby, "concurrent");
  const started = await Promise.allSettled([
    startDirectory(config, { log: (e) => logs.push(e) }),
    startDirectory(config, { log: (e) => logs.push(e) }),
  ]);
  try {
    const handles = started.map((s) => (s.status === "fulfilled" ? s.value : assert.fail(String(s.reason))));
    const rows = await queryOnce<{ version: number; n: string }>(
      primary.host,
      primary.port,
      "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version",
      [],
      "concurrent",
    );
    assert.deepEqual(
      rows.map((r) => [r.version, Number(r.n)]),
      [
        [1, 1],
        [2, 1],
      ],
    );
    const applied = logs
      .filter((e) => e.event === "migrations.applied")
      .flatMap((e) => e.applied as number[])
      .sort();
    assert.deepEqual(applied, [1, 2], "each version applied by exactly one instance");
    for (const h of handles) {
      assert.equal(h.schemaApplied, true);
      const put = await call(h.url, "PUT", "/users/carol", {
        tenant: "t",
        body: { name: "C", email: "c@x" },
      });
      assert.equal(put.status, 200);
    }
  } finally {
    await Promise.all(started.map((s) => (s.status === "fulfilled" ? s.value.close() : undefined)));
  }
});

test("with the primary unreachable at start, reads are served, writes answer 503 until it comes back", async () => {
  const writerPort = await freePort();
  const logs: LogEvent[] = [];
  const config = {
    ...testDirectoryConfig(primary, standby),
    databaseWriteUrl: dbUrl({ ...primary, port: writerPort }),
  };
  const d = await startDirectory(config, { log: (e) => logs.push(e) });
  let forwarder: { close(): Promise<void> } | undefined;
  try {
    // The local replica shows the schema in place: what it shows, the primary committed.
    assert.equal(d.schemaApplied, true);
    const read = await call(d.url, "GET", "/users/ada", { tenant: "acme" });
    assert.equal(read.status, 200);
    assert.equal(read.headers.get("x-ringfence-served-from"), "replica");
    const unknown = await call(d.url, "GET", "/users/nobody", { tenant: "acme" });
    assert.equal(unknown.status, 503, "absence cannot be confirmed without the primary");
    for (const write of [
      call(d.url, "PUT", "/users/dave", { tenant: "acme", body: { name: "Dave", email: "d@x" } }),
      call(d.url, "POST", "/tokens", { tenant: "acme", body: { userId: "ada" } }),
    ]) {
      const w = await write;
      assert.equal(w.status, 503);
      assert.equal(w.json.error.code, "STORE_UNAVAILABLE");
      assert.equal(w.headers.get("retry-after"), "1");
    }
    const health = await call(d.url, "GET", "/healthz");
    assert.equal(health.status, 200);
    assert.equal(health.json.primary, "unreachable");

    forwarder = await startForwarder(writerPort, primary);
    const put = await call(d.url, "PUT", "/users/dave", {
      tenant: "acme",
      body: { name: "Dave", email: "d@x" },
    });
    assert.equal(put.status, 200);
    assert.deepEqual(
      logs.filter((e) => e.event.startsWith("migrations.")),
      [{ event: "migrations.applied", applied: [], latest: MIGRATIONS.at(-1)?.version }],
    );
  } finally {
    await d.close();
    await forwarder?.close();
  }
});

test("the schema migrator retries an unreachable primary quietly and applies once it answers", async () => {
  const writerPort = await freePort();
  const logs: LogEvent[] = [];
  const pool = new pg.Pool({ connectionString: dbUrl({ ...primary, port: writerPort }), max: 1 });
  const migrator = new SchemaMigrator(pool, (e) => logs.push(e), 50);
  let forwarder: { close(): Promise<void> } | undefined;
  try {
    await migrator.start(2_000);
    assert.equal(migrator.applied, false);
    // Let a few retries fail (they must not log), then bring the writer endpoint up.
    await new Promise((r) => setTimeout(r, 400));
    forwarder = await startForwarder(writerPort, primary);
    await waitFor(() => migrator.applied, "the background migration to succeed");
    assert.deepEqual(
      logs.map((e) => e.event),
      ["migrations.waiting", "migrations.applied"],
      "one log line per state change, not per attempt",
    );
  } finally {
    migrator.stop();
    await pool.end();
    await forwarder?.close();
  }
});

test("a write whose synchronous replication is not confirmed is never acknowledged", async () => {
  signalGroup(standby.process, "SIGSTOP");
  try {
    for (const [fn, code] of [
      ["pg_cancel_backend", "WRITE_NOT_CONFIRMED"],
      ["pg_terminate_backend", "STORE_UNAVAILABLE"],
    ] as const) {
      const pending = call(base(), "PUT", `/users/${fn}`, {
        tenant: "acme",
        body: { name: "X", email: "x@x" },
      });
      const pid = await waitFor(async () => {
        const rows = await queryOnce<{ pid: number }>(
          primary.host,
          primary.port,
          "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND application_name = 'ringfence-directory'",
        );
        return rows[0]?.pid;
      }, "the write to wait for the synchronous standby");
      await queryOnce(primary.host, primary.port, `SELECT ${fn}($1)`, [pid]);
      const answer = await pending;
      assert.equal(answer.status, 503, `${fn}: ${JSON.stringify(answer.json)}`);
      assert.equal(answer.json.error.code, code);
      assert.equal(answer.headers.get("retry-after"), "1");
    }
  } finally {
    signalGroup(standby.process, "SIGCONT");
  }
  const retried = await call(base(), "PUT", "/users/pg_cancel_backend", {
    tenant: "acme",
    body: { name: "X", email: "x@x" },
  });
  assert.equal(retried.status, 200, "the idempotent retry succeeds once the standby is back");
});

test("the program starts from its environment, serves /healthz, drains and exits 0 on SIGTERM", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, "directory.js")], {
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      HOST: "127.0.0.1",
      RINGFENCE_REGION: "eu-west",
      RINGFENCE_ZONE: "eu-west-b",
      RINGFENCE_CELL: "cell-1",
      RINGFENCE_VERSION: "v9",
      DATABASE_URL: dbUrl(standby),
      DATABASE_WRITE_URL: dbUrl(primary),
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
      () => out.events.some((e) => e.event === "directory.started") || child.exitCode !== null,
      "the started event",
    );
    assert.equal(child.exitCode, null, stderr);
    const health = await call(`http://127.0.0.1:${port}`, "GET", "/healthz");
    assert.equal(health.status, 200);
    assert.equal(health.json.zone, "eu-west-b");
    assert.equal(health.json.version, "v9");

    // A request in flight when SIGTERM arrives is answered before the process exits: this one
    // waits (1 s) for an LSN the replica will never reach, then reads from the primary.
    const [{ t0 } = { t0: new Date() }] = await queryOnce<{ t0: Date }>(
      standby.host,
      standby.port,
      "SELECT now() AS t0",
    );
    const slow = call(`http://127.0.0.1:${port}`, "GET", "/users/ada", {
      tenant: "acme",
      headers: { "X-Ringfence-Min-LSN": "FFFFFFFF/0" },
    });
    await waitFor(async () => {
      const rows = await queryOnce<{ n: string }>(
        standby.host,
        standby.port,
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'ringfence-directory'
           AND query LIKE '%pg_last_wal_replay_lsn%' AND query_start > $1`,
        [t0],
      );
      return Number(rows[0]?.n) > 0;
    }, "the request to be waiting for the replica");
    child.kill("SIGTERM");
    const answered = await slow;
    assert.equal(answered.status, 200, "the in-flight request finished");
    assert.equal(answered.headers.get("x-ringfence-served-from"), "primary");
    assert.equal(await exited(child), 0, stderr);
    assert.deepEqual(
      out.events.map((e) => e.event),
      ["migrations.applied", "directory.started", "directory.stopping", "directory.stopped"],
    );
    assert.equal(out.events.find((e) => e.event === "directory.stopping")?.inFlight, 1);
    assert.equal(out.events.find((e) => e.event === "directory.stopped")?.cutOff, 0);
    assert.deepEqual(out.text, [], "every stdout line is JSON");
  } finally {
    await reap(child);
  }
});
