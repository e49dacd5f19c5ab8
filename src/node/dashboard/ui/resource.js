/**
 * GET resources shared by every component on the page, keyed by path: at most one request per path
 * in flight (a refetch asked for meanwhile runs once after it), refetches on events coalesced into
 * one per interval, and the last answer kept so a page shows it at once when revisited.
 */
import { useEffect, useReducer, useRef } from '/ui/vendor/htm-preact.mjs'
import { api, onEvents } from './api.js'

/** Entries nobody watches are dropped beyond this many (market filters make a new path each). */
const MAX_ENTRIES = 40

/**
 * @typedef {object} Entry
 * @property {string} path
 * @property {any} data
 * @property {import('./api.js').ApiError | undefined} error
 * @property {boolean} loaded       an answer (data or error) has arrived
 * @property {boolean} inFlight
 * @property {boolean} again        refetch once the request in flight ends
 * @property {ReturnType<typeof setTimeout> | undefined} timer
 * @property {Set<() => void>} listeners
 */

/** @type {Map<string, Entry>} */
const entries = new Map()

/** @param {string} path @returns {Entry} */
function entryFor (path) {
  let e = entries.get(path)
  if (e === undefined) {
    e = { path, data: undefined, error: undefined, loaded: false, inFlight: false, again: false, timer: undefined, listeners: new Set() }
    entries.set(path, e)
    prune()
  }
  return e
}

function prune () {
  for (const [path, e] of entries) {
    if (entries.size <= MAX_ENTRIES) return
    if (e.listeners.size === 0 && !e.inFlight) {
      clearTimeout(e.timer)
      entries.delete(path)
    }
  }
}

/** @param {Entry} e */
function notify (e) {
  for (const fn of [...e.listeners]) fn()
}

/**
 * Fetches `path` now, or once more after the request in flight (unless `join`: then the answer
 * in flight is good enough, as on page entry).
 * @param {string} path @param {{ join?: boolean }} [options]
 */
export function refresh (path, options = {}) {
  const e = entryFor(path)
  if (e.inFlight) {
    if (options.join !== true) e.again = true
    return
  }
  e.inFlight = true
  notify(e)
  api(path).then((data) => {
    e.data = data
    e.error = undefined
  }, (err) => {
    e.error = err
    // A resource that is gone is gone; any other failure leaves the last answer on screen.
    if (err?.status === 404) e.data = undefined
  }).finally(() => {
    e.loaded = true
    e.inFlight = false
    notify(e)
    if (e.again) {
      e.again = false
      if (e.listeners.size > 0) refresh(path)
    }
  })
}

/** Refetches `path` after `delay` ms unless a refetch is already due: a burst of events costs one request. */
export function schedule (path, delay = 300) {
  const e = entryFor(path)
  if (e.timer !== undefined) return
  e.timer = setTimeout(() => {
    e.timer = undefined
    if (e.listeners.size > 0) refresh(path)
  }, delay)
}

/**
 * Watches a GET resource: fetched on mount (or when `path` changes), refetched on the named events.
 * `path` undefined watches nothing. `keepPrevious` shows the previous path's data while the new one
 * loads or when it is refused (filters), instead of an empty table.
 * @param {string | undefined} path
 * @param {{ events?: string[], delay?: number, keepPrevious?: boolean }} [options]
 * @returns {{ data: any, error: import('./api.js').ApiError | undefined, loading: boolean, refreshing: boolean, stale: boolean, reload: () => void }}
 */
export function useResource (path, options = {}) {
  const { events = [], delay = 300, keepPrevious = false } = options
  const [, force] = useReducer((n) => n + 1, 0)
  const previous = useRef(undefined)
  const eventKey = events.join(',')

  useEffect(() => {
    if (path === undefined) return
    const e = entryFor(path)
    e.listeners.add(force)
    refresh(path, { join: true })
    const off = onEvents([...events, 'resync'], () => schedule(path, delay))
    return () => {
      e.listeners.delete(force)
      off()
    }
  }, [path, eventKey, delay])

  const e = path !== undefined ? entries.get(path) : undefined
  let data = e?.data
  let stale = false
  if (data !== undefined) previous.current = data
  else if (keepPrevious && previous.current !== undefined) {
    // Still loading, or refused (a bad filter value): the last good answer stays, marked stale.
    data = previous.current
    stale = true
  }
  return {
    data,
    error: e?.error,
    loading: e === undefined || (!e.loaded && data === undefined),
    refreshing: e?.inFlight === true,
    stale,
    reload: () => { if (path !== undefined) refresh(path) }
  }
}
