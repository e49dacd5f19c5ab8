/**
 * Presentation of the API's values: bigints arrive as decimal strings and stay strings (a fee in wei
 * does not fit a double), times are unix seconds, DIDs are long enough to need shortening in tables.
 */

/** The attestation ladder, lowest first (src/market/ladder.ts). */
export const LEVELS = ['Software', 'TdxLocal', 'TdxRemote', 'TdxRaTlsBidirectional', 'TdxPlusReproducibleBuild']

/** What each rung proves, for titles and the floor select. */
export const LEVEL_HELP = {
  Software: 'signed card only',
  TdxLocal: 'quote matches the declared measurements',
  TdxRemote: 'full DCAP chain to Intel\'s root',
  TdxRaTlsBidirectional: 'plus the bidirectional attest protocol',
  TdxPlusReproducibleBuild: 'plus a build recipe that reproduces the measurements'
}

/** @param {string | undefined} level  @returns {number} -1 when unknown */
export function levelRank (level) {
  return level === undefined ? -1 : LEVELS.indexOf(level)
}

/** Groups the digits of a non-negative decimal string: "1234567" → "1,234,567". */
export function groupDigits (value) {
  if (value === undefined || value === null || value === '') return '—'
  const s = String(value)
  if (!/^\d+$/.test(s)) return s
  return s.replace(/\B(?=(\d{3})+(?!\d))/g, ',')
}

/** A wei amount (decimal string) with grouped digits and its unit. */
export function formatWei (value, currency) {
  if (value === undefined || value === null || value === '') return '—'
  return `${groupDigits(value)} ${currency !== undefined && currency !== 'wei' ? `wei (${currency})` : 'wei'}`
}

/** @param {number | undefined} n */
export function formatNumber (n, digits = 0) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—'
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 })
}

/** @param {number | undefined} bytes */
export function formatBytes (bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = bytes
  let i = 0
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++ }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`
}

/** Shortens "did:key:z6MkhaX…" to its method, the start and the end of the key, enough to tell apart. */
export function shortDid (did) {
  if (typeof did !== 'string') return '—'
  if (did.length <= 28) return did
  const prefix = did.startsWith('did:key:') ? 'did:key:' : ''
  const rest = did.slice(prefix.length)
  return `${prefix}${rest.slice(0, 8)}…${rest.slice(-6)}`
}

/** Shortens an id, hash or CID to its two ends. */
export function shortId (id, head = 10, tail = 6) {
  if (typeof id !== 'string') return '—'
  if (id.length <= head + tail + 1) return id
  return `${id.slice(0, head)}…${id.slice(-tail)}`
}

const pad = (n) => String(n).padStart(2, '0')

/** Local date and time, to the second: "2025-03-04 13:05:09". */
export function formatTime (unixSecs) {
  if (typeof unixSecs !== 'number' || !Number.isFinite(unixSecs)) return '—'
  const d = new Date(unixSecs * 1000)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/** "12 s ago", "in 3 min": for values the operator reads at a glance; the exact time goes in a title. */
export function relativeTime (unixSecs, nowSecs = Date.now() / 1000) {
  if (typeof unixSecs !== 'number' || !Number.isFinite(unixSecs)) return '—'
  const delta = Math.round(unixSecs - nowSecs)
  const abs = Math.abs(delta)
  // Clocks differ by a second or two between node and browser: "in 0 s" would only confuse.
  if (abs < 5) return 'just now'
  const text = abs < 60
    ? `${abs} s`
    : abs < 3600
      ? `${Math.round(abs / 60)} min`
      : abs < 86400 * 2
        ? `${(abs / 3600).toFixed(abs < 36000 ? 1 : 0)} h`
        : `${Math.round(abs / 86400)} d`
  return delta >= 0 ? `in ${text}` : `${text} ago`
}

/** A duration in seconds as "1 h 5 min", "45 s". */
export function formatDuration (secs) {
  if (typeof secs !== 'number' || !Number.isFinite(secs)) return '—'
  const s = Math.round(secs)
  if (s < 60) return `${s} s`
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 !== 0 ? ` ${s % 60} s` : ''}`
  const h = Math.floor(s / 3600)
  const m = Math.round((s % 3600) / 60)
  if (h < 48) return `${h} h${m !== 0 ? ` ${m} min` : ''}`
  return `${Math.round(h / 24)} d`
}

/** Min, median and max of decimal-string amounts, compared as bigints. */
export function feeStats (fees) {
  const values = []
  for (const f of fees ?? []) {
    try { values.push(BigInt(f)) } catch { /* a malformed fee is left out rather than failing the table */ }
  }
  if (values.length === 0) return undefined
  values.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  const mid = values.length >> 1
  const median = values.length % 2 === 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2n
  return { count: values.length, min: values[0].toString(), median: median.toString(), max: values[values.length - 1].toString() }
}

/** Short rung names for chart axes, where the full names do not fit side by side. */
export const LEVEL_SHORT = {
  Software: 'Software',
  TdxLocal: 'TDX local',
  TdxRemote: 'TDX remote',
  TdxRaTlsBidirectional: 'RA-TLS',
  TdxPlusReproducibleBuild: 'Repro build'
}
