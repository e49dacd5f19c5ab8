/**
 * The node's local API, same origin: JSON requests carrying the dashboard's session cookie, and the
 * one server-sent event stream the whole page shares (the node allows few streams per process).
 */
import { getConnection, onConnection, probeNow, reportAnswer, reportUnreachable, setLive } from './connection.js'

/** An API refusal: `code` and `message` are the node's `{ error, message }`; status 0 = no answer. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor (status, code, message) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
  }
}

/**
 * @param {string} path  same-origin path, e.g. "/v1/market?floor=TdxRemote"
 * @param {{ method?: string, body?: unknown, signal?: AbortSignal }} [options]
 */
export async function api (path, options = {}) {
  const { method = 'GET', body, signal } = options
  /** @type {Record<string, string>} */
  const headers = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  let res
  let text
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal
    })
    text = await res.text()
  } catch (err) {
    if (signal?.aborted === true) throw err
    reportUnreachable()
    throw new ApiError(0, 'UNREACHABLE', `The node is not reachable at ${location.origin}.`)
  }
  reportAnswer(res.status)
  let json
  try {
    json = text === '' ? undefined : JSON.parse(text)
  } catch {
    json = undefined
  }
  if (!res.ok) {
    const code = typeof json?.error === 'string' ? json.error : `HTTP_${res.status}`
    const message = typeof json?.message === 'string' ? json.message : `The node answered ${res.status} ${res.statusText}.`
    throw new ApiError(res.status, code, message)
  }
  if (json === undefined && text !== '') throw new ApiError(res.status, 'RESPONSE_INVALID', 'The node answered with something that is not JSON.')
  return json
}

// ---- Event stream --------------------------------------------------------------------------------

export const EVENT_TYPES = ['collection', 'verified', 'rfp', 'contract', 'payment', 'trust', 'metrics']

/** @type {Map<string, Set<(data: any, type: string) => void>>} */
const handlers = new Map()
/** @type {EventSource | undefined} */
let source
/** @type {ReturnType<typeof setTimeout> | undefined} */
let reopenTimer
let failures = 0
let everOpened = false

/**
 * Calls `fn` for each event of the given types; 'resync' is ours: sent when events may have been
 * missed (the stream or the node came back), so readers refetch.
 * @param {string[]} types  @param {(data: any, type: string) => void} fn  @returns {() => void}
 */
export function onEvents (types, fn) {
  for (const t of types) {
    let set = handlers.get(t)
    if (set === undefined) handlers.set(t, set = new Set())
    set.add(fn)
  }
  return () => { for (const t of types) handlers.get(t)?.delete(fn) }
}

function emit (type, data) {
  for (const fn of [...(handlers.get(type) ?? [])]) {
    try {
      fn(data, type)
    } catch (err) {
      console.error(`handler for ${type} event failed`, err)
    }
  }
}

function open () {
  if (source !== undefined) return
  const es = new EventSource('/v1/events')
  source = es
  es.onopen = () => {
    // Events may have been missed since the last stream (or a first one that failed): refetch.
    const missed = everOpened || failures > 0
    failures = 0
    everOpened = true
    setLive(true)
    if (missed) emit('resync', undefined)
  }
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (event) => {
      let data
      try {
        data = JSON.parse(/** @type {MessageEvent} */ (event).data)
      } catch {
        return
      }
      emit(type, data)
    })
  }
  es.onerror = () => {
    // The browser's own retry would keep knocking without telling us why; close, ask /v1/status,
    // and reopen ourselves: at once when only the stream failed, or when the node answers again.
    es.close()
    if (source === es) source = undefined
    setLive(false)
    failures++
    void probeNow().then((reach) => {
      if (reach === 'online') scheduleReopen()
    })
  }
}

function scheduleReopen () {
  if (reopenTimer !== undefined || source !== undefined) return
  const delay = Math.min(1000 * 2 ** Math.max(0, failures - 1), 30000)
  reopenTimer = setTimeout(() => {
    reopenTimer = undefined
    if (getConnection().reach === 'online') open()
  }, delay)
}

/** Opens the stream once for the page's life; it comes back by itself after the node or session does. */
export function startEvents () {
  onConnection((next, prev) => {
    if (next !== 'online' || prev === 'online') return
    // A reopened stream sends 'resync' itself once it is open.
    if (source === undefined) scheduleReopen()
    else if (prev === 'offline' || prev === 'unauthorized') emit('resync', undefined)
  })
  open()
}
