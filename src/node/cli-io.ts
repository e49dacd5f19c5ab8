/**
 * Where a CLI run writes and how it ends, passed to every command instead of touching `process`:
 * tests run `main(argv, io)` in-process (a spawned CLI costs seconds on a busy machine), and a
 * command's exit status never leaks into whatever else shares the process.
 */
import { toHex } from '../market/bytes.js'

export interface CliIo {
  out: (text: string) => void
  err: (text: string) => void
}

export const processIo: CliIo = {
  out: (text) => { process.stdout.write(text) },
  err: (text) => { process.stderr.write(text) }
}

export class CliRun {
  /** Non-zero when a command finished but something it handled failed (refused records…). */
  exitCode = 0

  constructor (readonly io: CliIo) {}

  json (value: unknown): void {
    this.io.out(JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v instanceof Uint8Array ? toHex(v) : v), 2) + '\n')
  }
}
