/**
 * The package root: the folder that holds `package.json`, `topologies/` and `examples/`, the same
 * from `src/` and `dist/`. Its own module so that reading it loads nothing else.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
