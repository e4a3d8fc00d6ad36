/**
 * PostgreSQL's control file (`global/pg_control`): reading and changing its database system
 * identifier. A cluster copied from a template (see `initPrimary`) would share the template's
 * identifier with every other copy, and the identifier is what PostgreSQL checks so that a standby
 * never replays, and pg_rewind never copies, another cluster's WAL. So each copy gets its own.
 *
 * The file starts with the 64-bit identifier and holds a CRC-32C of the bytes before its `crc`
 * field, whose offset depends on the major version and platform. It is found, not assumed: the
 * one 4-byte-aligned offset where the stored value is the CRC of everything before it.
 */
import { randomInt } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import crc32cModule from "crc-32/crc32c.js";
import { RingfenceError } from "./errors.js";

const crc32c = (bytes: Uint8Array): number =>
  (crc32cModule as { buf: (b: Uint8Array) => number }).buf(bytes) >>> 0;

/** Where the control file's CRC is: the offset of its `crc` field. Throws when no offset fits. */
export function controlCrcOffset(control: Buffer, file = "pg_control"): number {
  // The struct is a few hundred bytes in every supported version; the file is 8 KiB of which the rest is zeros.
  for (let offset = 8; offset + 4 <= Math.min(control.length, 1024); offset += 4) {
    if (crc32c(control.subarray(0, offset)) === control.readUInt32LE(offset)) return offset;
  }
  throw new RingfenceError(
    "RINGFENCE_PG_FAILED",
    `${file}: no valid CRC found in its first 1 KiB: not a PostgreSQL control file, or a damaged one`,
  );
}

/** The database system identifier in the control file of `dataDir`. */
export function systemIdentifier(dataDir: string): bigint {
  const file = join(dataDir, "global", "pg_control");
  const control = readFileSync(file);
  controlCrcOffset(control, file); // refuses a damaged file
  return control.readBigUInt64LE(0);
}

/**
 * A new identifier as PostgreSQL makes one (seconds since 1970 in the high half), with random low
 * bits where PostgreSQL puts microseconds and its pid, so two copies made in the same second differ.
 */
export function newSystemIdentifier(nowMs = Date.now()): bigint {
  const seconds = BigInt(Math.floor(nowMs / 1000));
  return (seconds << 32n) | (BigInt(randomInt(0, 2 ** 24)) << 8n) | BigInt(randomInt(0, 256));
}

/**
 * Writes `id` as the system identifier of the stopped cluster in `dataDir` and its new CRC. The WAL
 * still carries the old identifier: run `pg_resetwal` after this (`initPrimary` does).
 */
export function setSystemIdentifier(dataDir: string, id: bigint): void {
  const file = join(dataDir, "global", "pg_control");
  const control = readFileSync(file);
  const offset = controlCrcOffset(control, file);
  control.writeBigUInt64LE(id, 0);
  control.writeUInt32LE(crc32c(control.subarray(0, offset)), offset);
  writeFileSync(file, control); // in place: keeps the owner and mode
}
