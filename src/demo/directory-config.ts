/**
 * The directory service's configuration: read from the environment the agent gives every service
 * instance, validated once at start, frozen. A bad or missing variable is reported in one line that
 * names it and says what is expected.
 */
import { EnvVarError, isPostgresUrl, PORT_RULE, readVar, SECRET_PATTERN, type VarRule } from "./env-vars.js";

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
export class ConfigError extends EnvVarError {
  constructor(variable: string, message: string) {
    super(variable, message);
    this.name = "ConfigError";
  }
}

function postgresUrl(what: string): VarRule {
  // The value is not echoed: a URL may carry a password.
  const example = `a postgres:// URL of ${what}, e.g. postgres://user@127.0.0.1:5432/db`;
  return { what: example, check: isPostgresUrl, invalid: `must be ${example}` };
}

function name(what: string, slash = false): VarRule {
  return {
    what: `the ${what} this instance runs in`,
    pattern: slash ? /^[A-Za-z0-9._/-]{1,128}$/ : /^[A-Za-z0-9._-]{1,128}$/,
    invalid: `must be the ${what} name: 1 to 128 characters of letters, digits, '.', '_'${slash ? ", '/'" : ""} or '-'`,
  };
}

/** The variables shared by the service and (minus DATABASE_WRITE_URL) its fallback, in the docs' order. */
const RULES = {
  PORT: PORT_RULE,
  HOST: {
    what: "an address to listen on",
    pattern: /^.+$/,
    invalid: "must be an address to listen on, e.g. 127.0.0.1",
    default: "127.0.0.1",
  },
  RINGFENCE_REGION: name("region"),
  RINGFENCE_ZONE: name("zone", true), // a zone id is region/zone, e.g. us-east/a
  RINGFENCE_CELL: name("cell"),
  RINGFENCE_VERSION: {
    what: "the version",
    pattern: /^[A-Za-z0-9._+-]{1,128}$/,
    invalid: "must be 1 to 128 characters of letters, digits, '.', '_', '+' or '-'",
    default: "dev",
  },
  DATABASE_URL: postgresUrl("the local replica"),
  DATABASE_WRITE_URL: postgresUrl("the cell's writer endpoint"),
  RINGFENCE_TOKEN_SECRET: {
    what: "the token signing key, at least 32 bytes as hex",
    pattern: SECRET_PATTERN,
    invalid: "must be at least 32 bytes written as hex (64 or more hex digits), e.g. `openssl rand -hex 32`",
  },
} satisfies Record<string, VarRule>;

/**
 * Reads and validates the configuration from `env`. Throws a ConfigError naming the first bad or
 * missing variable (in the order listed in the docs).
 */
export function directoryConfigFromEnv(env: NodeJS.ProcessEnv = process.env): DirectoryConfig {
  const get = (variable: keyof typeof RULES) =>
    readVar(env, variable, RULES[variable], (v, m) => new ConfigError(v, m));
  return Object.freeze({
    port: Number(get("PORT")),
    host: get("HOST"),
    region: get("RINGFENCE_REGION"),
    zone: get("RINGFENCE_ZONE"),
    cell: get("RINGFENCE_CELL"),
    version: get("RINGFENCE_VERSION"),
    databaseUrl: get("DATABASE_URL"),
    databaseWriteUrl: get("DATABASE_WRITE_URL"),
    tokenSecret: Buffer.from(get("RINGFENCE_TOKEN_SECRET"), "hex"),
  });
}
