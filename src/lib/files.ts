/**
 * Small file helpers shared by the world's state files.
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";

/** Writes `text` to `path` through a temporary file beside it and a rename: all of it or nothing. */
export function writeFileAtomic(path: string, text: string): void {
  const temp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(temp, text);
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}
