import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, directoryConfigFromEnv } from "./directory-config.js";
import { FallbackConfigError, fallbackConfigFromEnv } from "./fallback.js";
import { SECRET_HEX } from "./testing.js";

const here = dirname(fileURLToPath(import.meta.url));

const env = {
  PORT: "8080",
  RINGFENCE_REGION: "eu-west",
  RINGFENCE_ZONE: "eu-west-a",
  RINGFENCE_CELL: "cell-1",
  DATABASE_URL: "postgres://ringfence@127.0.0.1:5433/postgres",
  DATABASE_WRITE_URL: "postgres://ringfence@127.0.0.1:5432/postgres",
  RINGFENCE_TOKEN_SECRET: SECRET_HEX,
};

test("a complete environment compiles to a frozen configuration with defaults", () => {
  const config = directoryConfigFromEnv(env);
  assert.ok(Object.isFrozen(config));
  assert.equal(config.port, 8080);
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.version, "dev");
  assert.equal(config.tokenSecret.length, 32);
  assert.equal(directoryConfigFromEnv({ ...env, HOST: "127.0.0.2", RINGFENCE_VERSION: "v2" }).version, "v2");
});

test("each missing or bad variable is named with what it should be", () => {
  const cases: [Record<string, string | undefined>, string, RegExp][] = [
    [{ PORT: undefined }, "PORT", /is required/],
    [{ PORT: "http" }, "PORT", /integer from 0 to 65535/],
    [{ PORT: "70000" }, "PORT", /integer from 0 to 65535/],
    [{ RINGFENCE_REGION: undefined }, "RINGFENCE_REGION", /is required/],
    [{ RINGFENCE_ZONE: "a zone" }, "RINGFENCE_ZONE", /zone name/],
    [{ RINGFENCE_CELL: undefined }, "RINGFENCE_CELL", /is required/],
    [{ DATABASE_URL: "mysql://x@h/db" }, "DATABASE_URL", /postgres:\/\/ URL of the local replica/],
    [{ DATABASE_WRITE_URL: undefined }, "DATABASE_WRITE_URL", /is required/],
    [{ RINGFENCE_TOKEN_SECRET: "abcd" }, "RINGFENCE_TOKEN_SECRET", /at least 32 bytes/],
    [{ RINGFENCE_TOKEN_SECRET: "zz".repeat(32) }, "RINGFENCE_TOKEN_SECRET", /hex/],
  ];
  for (const [change, variable, message] of cases) {
    assert.throws(
      () => directoryConfigFromEnv({ ...env, ...change }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.variable === variable &&
        err.message.startsWith(`${variable}: `) &&
        message.test(err.message),
      `${JSON.stringify(change)} should be reported on ${variable}`,
    );
  }
});

test("the fallback's configuration has no writer endpoint and ignores DATABASE_WRITE_URL", () => {
  const { DATABASE_WRITE_URL: _ignored, ...rest } = env;
  const config = fallbackConfigFromEnv(rest);
  assert.equal(config.databaseUrl, env.DATABASE_URL);
  assert.equal("databaseWriteUrl" in fallbackConfigFromEnv(env), false);
  assert.throws(
    () => fallbackConfigFromEnv({ ...rest, RINGFENCE_TOKEN_SECRET: undefined }),
    (err: unknown) => err instanceof FallbackConfigError && err.variable === "RINGFENCE_TOKEN_SECRET",
  );
});

test("both programs exit 2 with one line naming a bad variable", () => {
  for (const program of ["directory.js", "fallback.js"]) {
    const result = spawnSync(process.execPath, [join(here, program)], {
      env: { PATH: process.env.PATH, ...env, PORT: "not-a-port" },
      encoding: "utf8",
      timeout: 10_000,
    });
    assert.equal(result.status, 2, `${program}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? "", /PORT: must be an integer from 0 to 65535/);
    assert.equal(result.stdout, "");
  }
});
