/**
 * Per-component logging to stderr (`cmesh:sync`, `cmesh:gossip`…), the libp2p habit. Level from
 * CMESH_LOG (error | warn | info | debug; default info). Callers never pass secrets: keys, tokens
 * and sealed payloads are not logged anywhere in cmesh.
 */
const LEVELS = { silent: 0, error: 1, warn: 2, info: 3, debug: 4 } as const
export type LogLevel = keyof typeof LEVELS

export interface Logger {
  error: (msg: string) => void
  warn: (msg: string) => void
  info: (msg: string) => void
  debug: (msg: string) => void
  forComponent: (name: string) => Logger
}

export function createLogger (component = 'cmesh', level: LogLevel = (process.env.CMESH_LOG as LogLevel | undefined) ?? 'info'): Logger {
  const threshold = LEVELS[level] ?? LEVELS.info
  const emit = (at: LogLevel) => (msg: string) => {
    if (LEVELS[at] <= threshold) process.stderr.write(`${new Date().toISOString()} ${at.padEnd(5)} ${component}: ${msg}\n`)
  }
  return {
    error: emit('error'),
    warn: emit('warn'),
    info: emit('info'),
    debug: emit('debug'),
    forComponent: (name) => createLogger(`${component}:${name}`, level)
  }
}
