/**
 * Where the CLI finds itself and its state: light constants that every command group shares, kept
 * apart so that importing them loads nothing else.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The ringfence CLI script (this package's bin), used to start the other roles. */
export const RINGFENCE_BIN = join(dirname(fileURLToPath(import.meta.url)), "main.js");

/** The state directory when `--state-dir` is not given. */
export const DEFAULT_STATE_DIR = ".ringfence";
