/**
 * The directory service's configuration: read from the environment the agent gives every service
 * instance, validated once at start, frozen. A bad or missing variable is reported in one line that
 * names it and says what is expected.
 */
import { z } from "zod";

export interface DirectoryConfig {
  /** TCP port to listen on; 0 picks a free one (the started event and `url` say which). */
  readonly port: number;
  /** Address to listen on; 127.0.0.1 by default. */
  readonly host: string;
  readonly region: string;
  readonly zone: string;
  readonly cell: string;
  /** The version being rolled out, reported by /healthz; "dev" by default. */
  readonly version: string;
  /** The local replica: every read goes here first. */
  readonly databaseUrl: string;
  /** The cell's writer endpoint (the current primary): writes, migrations, and reads the replica lacks. */
  readonly databaseWriteUrl: string;
  /** HMAC key for sign-in tokens, at least 32 bytes. */
  readonly tokenSecret: Buffer;
}

/** A configuration problem, naming the environment variable. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

function required(what: string) {
  return z.string({
    error: (issue) => (issue.input === undefined ? `is required (${what})` : `must be ${what}`),
  });
}

function postgresUrl(what: string) {
  return required(`a postgres:// URL of ${what}, e.g. postgres://user@127.0.0.1:5432/db`).refine(
    (value) => {
      try {
        const url = new URL(value);
        return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== "";
      } catch {
        return false;
      }
    },
    // The value is not echoed: a URL may carry a password.
    { error: `must be a postgres:// URL of ${what}, e.g. postgres://user@127.0.0.1:5432/db` },
  );
}

const name = (what: string, slash = false) =>
  required(`the ${what} this instance runs in`).regex(
    slash ? /^[A-Za-z0-9._/-]{1,128}$/ : /^[A-Za-z0-9._-]{1,128}$/,
    {
      error: `must be the ${what} name: 1 to 128 characters of letters, digits, '.', '_'${slash ? ", '/'" : ""} or '-'`,
    },
  );

/** Environment variables shared by the service and (minus DATABASE_WRITE_URL) its fallback. */
const envShape = {
  PORT: required("the TCP port to listen on, an integer from 0 to 65535")
    .regex(/^\d{1,5}$/, { error: "must be an integer from 0 to 65535" })
    .transform(Number)
    .refine((port) => port <= 65_535, { error: "must be an integer from 0 to 65535" }),
  HOST: z.string().min(1, { error: "must be an address to listen on, e.g. 127.0.0.1" }).default("127.0.0.1"),
  RINGFENCE_REGION: name("region"),
  RINGFENCE_ZONE: name("zone", true), // a zone id is region/zone, e.g. us-east/a
  RINGFENCE_CELL: name("cell"),
  RINGFENCE_VERSION: z
    .string()
    .regex(/^[A-Za-z0-9._+-]{1,128}$/, {
      error: "must be 1 to 128 characters of letters, digits, '.', '_', '+' or '-'",
    })
    .default("dev"),
  DATABASE_URL: postgresUrl("the local replica"),
  DATABASE_WRITE_URL: postgresUrl("the cell's writer endpoint"),
  RINGFENCE_TOKEN_SECRET: required("the token signing key, at least 32 bytes as hex").regex(
    /^(?:[0-9a-fA-F]{2}){32,}$/,
    {
      error: "must be at least 32 bytes written as hex (64 or more hex digits), e.g. `openssl rand -hex 32`",
    },
  ),
};

const envSchema = z.object(envShape);

/**
 * Reads and validates the configuration from `env`. Throws a ConfigError naming the first bad or
 * missing variable (in the order listed in the docs).
 */
export function directoryConfigFromEnv(env: NodeJS.ProcessEnv = process.env): DirectoryConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(String(issue?.path[0] ?? "environment"), issue?.message ?? "is invalid");
  }
  const e = parsed.data;
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    region: e.RINGFENCE_REGION,
    zone: e.RINGFENCE_ZONE,
    cell: e.RINGFENCE_CELL,
    version: e.RINGFENCE_VERSION,
    databaseUrl: e.DATABASE_URL,
    databaseWriteUrl: e.DATABASE_WRITE_URL,
    tokenSecret: Buffer.from(e.RINGFENCE_TOKEN_SECRET, "hex"),
  });
}
