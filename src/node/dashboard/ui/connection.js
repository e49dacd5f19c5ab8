/**
 * Whether the node answers and whether our session is good, learnt from every API answer. While the
 * node is unreachable or the session is refused, one probe of GET /v1/status runs every 5 s (never
 * two at once), so the banners clear by themselves when the node is back or the operator logged in
 * again in another tab.
 */

/** @typedef {'connecting' | 'online' | 'offline' | 'unauthorized'} Reach */

const PROBE_MS = 5000

/** @type {Reach} */
let reach = 'connecting'
/** Whether the event stream is open: the header shows it, pages do not depend on it. */
let live = false
/** @type {Set<(next: Reach, prev: Reach) => void>} */
const listeners = new Set()
/** @type {ReturnType<typeof setTimeout> | undefined} */
let probeTimer
/** @type {Promise<Reach> | undefined} */
let probing

export function getConnection () {
  return { reach, live }
}

/** @param {(next: Reach, prev: Reach) => void} fn  @returns {() => void} */
export function onConnection (fn) {
  listeners.add(fn)
  return () => { listeners.delete(fn) }
}

/** @param {Reach} next */
function setReach (next) {
  if (next === reach) return
  const prev = reach
  reach = next
  if (next === 'offline' || next === 'unauthorized') scheduleProbe()
  for (const fn of [...listeners]) fn(next, prev)
}

/** @param {boolean} open */
export function setLive (open) {
  if (open === live) return
  live = open
  for (const fn of [...listeners]) fn(reach, reach)
}

/** Any HTTP answer proves the node reachable; only a 2xx proves the session good again. */
export function reportAnswer (status) {
  if (status === 401) setReach('unauthorized')
  else if (status >= 200 && status < 300) setReach('online')
  else if (reach !== 'unauthorized') setReach('online')
}

export function reportUnreachable () {
  setReach('offline')
}

function scheduleProbe () {
  if (probeTimer !== undefined || probing !== undefined) return
  probeTimer = setTimeout(() => {
    probeTimer = undefined
    void probeNow()
  }, PROBE_MS)
}

/**
 * Asks GET /v1/status now (joining a probe already running) and returns what it learnt. Used by the
 * event stream to tell a dead node from a refused session when the stream fails.
 * @returns {Promise<Reach>}
 */
export function probeNow () {
  if (probing !== undefined) return probing
  if (probeTimer !== undefined) { clearTimeout(probeTimer); probeTimer = undefined }
  probing = (async () => {
    try {
      const res = await fetch('/v1/status', { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } })
      // The body is not needed; reading it lets the connection be reused.
      await res.arrayBuffer().catch(() => {})
      reportAnswer(res.status)
    } catch {
      reportUnreachable()
    }
    return reach
  })()
  probing.finally(() => {
    probing = undefined
    if (reach === 'offline' || reach === 'unauthorized') scheduleProbe()
  })
  return probing
}
