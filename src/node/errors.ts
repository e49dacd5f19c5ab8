import { CmeshError } from '../market/errors.js'

export type NodeErrorCode =
  | 'KEY_FILE_EXISTS'
  | 'KEY_FILE_MISSING'
  | 'KEY_FILE_INSECURE'
  | 'KEY_FILE_INVALID'
  | 'INPUT_INVALID'
  | 'CONFIG_INVALID'
  | 'NODE_NOT_RUNNING'
  | 'NODE_API_ERROR'
  | 'NODE_NOT_STARTED'
  | 'DATA_DIR_UNUSABLE'
  | 'STORE_LOCKED'
  | 'STORE_OPEN_FAILED'
  | 'STORE_CURRENT_MISSING'
  | 'STORE_CORRUPT'
  | 'STORE_IO_ERROR'
  | 'STORE_READ_ONLY'
  | 'IDENTITY_MISSING'
  | 'LISTEN_FAILED'
  | 'API_START_FAILED'
  | 'START_FAILED'
  | 'HTTP_START_FAILED'
  | 'DIAL_BACKOFF'

/** Errors of the node layer (files, config, CLI input); the CLI prints `code: message`. */
export class NodeError extends CmeshError<NodeErrorCode> {}

/** The code of a low-level error (an errno, a LevelDB code), looking through `cause`. */
export function errorCodeOf (err: unknown): string | undefined {
  for (let e: any = err; e !== undefined && e !== null; e = e.cause) {
    if (typeof e.code === 'string' && e.code !== 'LEVEL_DATABASE_NOT_OPEN') return e.code
  }
  return undefined
}

/** An error's message on one line, without the stack traces some libraries fold into it (libp2p's listen errors). */
export function withoutStacks (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.split('\n').filter((line) => line.trim() !== '' && !/^\s+at /.test(line)).map((line) => line.trim()).join(' ')
}

/**
 * Runs one start-up step; an error that is not already a typed cmesh error becomes a NodeError
 * with the step's code, so a failed start always ends with one `cmesh: CODE: message` line.
 */
export async function startStep<T> (code: NodeErrorCode, what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    if (err instanceof CmeshError) throw err
    throw new NodeError(code, `${what}: ${errorCodeOf(err) ?? withoutStacks(err)}`, {}, { cause: err })
  }
}
