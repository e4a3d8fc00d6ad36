/**
 * Reading a demo program's configuration from environment variables, one variable at a time, each
 * bad or missing one reported by name with what it should be.
 *
 * Hand-written rather than a schema library on purpose: every service instance of the local world
 * is a process of its own (36 in the default world), and loading zod cost each of them ~9 MiB of
 * heap and ~0.1 s of CPU at start, for a dozen string checks (docs/benchmarks.md, the world).
 */

/** A configuration problem, naming the environment variable. */
export class EnvVarError extends Error {
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = "EnvVarError";
    this.variable = variable;
  }
}

export interface VarRule {
  /** Said after "is required (...)" when the variable is missing and has no default. */
  readonly what: string;
  /** The value must match this whole; `invalid` is the message when it does not. */
  readonly pattern?: RegExp;
  /** A further check on the value (after the pattern). */
  readonly check?: (value: string) => boolean;
  readonly invalid: string;
  /** Used when the variable is unset; a variable with a default is never required. */
  readonly default?: string;
}

/**
 * Reads `name` from `env` under `rule`, throwing `makeError(name, message)` when it is missing
 * (without a default) or invalid. Values are never echoed: a URL or key may be secret.
 */
export function readVar(
  env: NodeJS.ProcessEnv,
  name: string,
  rule: VarRule,
  makeError: (variable: string, message: string) => Error = (v, m) => new EnvVarError(v, m),
): string {
  const value = env[name] ?? rule.default;
  if (value === undefined) throw makeError(name, `is required (${rule.what})`);
  if ((rule.pattern && !rule.pattern.test(value)) || (rule.check && !rule.check(value))) {
    throw makeError(name, rule.invalid);
  }
  return value;
}

/** A TCP port, 0 to 65535. */
export const PORT_RULE: VarRule = {
  what: "the TCP port to listen on, an integer from 0 to 65535",
  pattern: /^\d{1,5}$/,
  check: (v) => Number(v) <= 65_535,
  invalid: "must be an integer from 0 to 65535",
};

/** True for a postgres:// or postgresql:// URL with a host. */
export function isPostgresUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "postgres:" || url.protocol === "postgresql:") && url.hostname !== "";
  } catch {
    return false;
  }
}

/** A token signing key: at least 32 bytes written as hex. */
export const SECRET_PATTERN = /^(?:[0-9a-fA-F]{2}){32,}$/;
