/**
 * Server-sent event streams of the local API (`GET /v1/events`), so a local UI or script can follow
 * the node without polling. Each stream costs a subscription and a socket, so both are bounded: at
 * most MAX_EVENT_STREAMS at once, and a reader that lets more than MAX_STREAM_BUFFER bytes pile up
 * is cut off rather than buffered for. Every subscription ends with its connection or with closeAll().
 */
import type { ServerResponse } from 'node:http'
import { encodeApiJson } from './api-json.js'

export interface ApiEvent {
  type: string
  data: unknown
}

export interface ApiEventSource {
  /** Returns the unsubscribe function. */
  subscribe: (listener: (event: ApiEvent) => void) => () => void
}

export const MAX_EVENT_STREAMS = 32
export const MAX_STREAM_BUFFER = 1024 * 1024
export const KEEPALIVE_MS = 15_000

export class EventStreams {
  private readonly open = new Map<ServerResponse, () => void>()
  private keepalive: ReturnType<typeof setInterval> | undefined

  constructor (private readonly source: ApiEventSource) {}

  get size (): number {
    return this.open.size
  }

  /** Starts streaming on `res`; false (nothing written) when MAX_EVENT_STREAMS are already open. */
  attach (res: ServerResponse): boolean {
    if (this.open.size >= MAX_EVENT_STREAMS) return false
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff'
    })
    let id = 0
    let unsubscribe: (() => void) | undefined
    let closed = false
    const close = (): void => {
      if (closed) return
      closed = true
      unsubscribe?.()
      this.open.delete(res)
      if (this.open.size === 0) this.stopKeepalive()
    }
    this.open.set(res, close)
    res.once('close', close)
    write(res, ': connected\n\n')
    try {
      unsubscribe = this.source.subscribe((event) => {
        if (closed) return
        const frame = encodeFrame(++id, event)
        if (frame !== undefined) write(res, frame)
      })
    } catch (err) {
      res.destroy(err as Error)
      return true
    }
    // The subscription may have been made after the connection already went.
    if (closed) unsubscribe()
    this.keepalive ??= setInterval(() => { for (const r of this.open.keys()) write(r, ': keepalive\n\n') }, KEEPALIVE_MS).unref()
    return true
  }

  /** Ends every stream and its subscription now; the connections close behind. */
  closeAll (): void {
    for (const [res, close] of [...this.open]) {
      close()
      res.end()
    }
    this.stopKeepalive()
  }

  private stopKeepalive (): void {
    clearInterval(this.keepalive)
    this.keepalive = undefined
  }
}

/** One event as `id`, `event` and a one-line `data` field; undefined if it cannot be framed safely. */
function encodeFrame (id: number, event: ApiEvent): string | undefined {
  if (typeof event?.type !== 'string' || event.type === '' || event.type.includes('\n') || event.type.includes('\r')) return undefined
  let data: string
  try {
    data = encodeApiJson(event.data) // JSON escapes line breaks, so this is one line
  } catch {
    return undefined
  }
  return `id: ${id}\nevent: ${event.type}\ndata: ${data}\n\n`
}

function write (res: ServerResponse, chunk: string): void {
  if (res.destroyed || res.writableEnded) return
  res.write(chunk)
  if (res.writableLength > MAX_STREAM_BUFFER) res.destroy()
}
