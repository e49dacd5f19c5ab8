/**
 * The node's metrics (prom-client's JSON): lookups for the Node page's counters, and a short
 * in-memory history built from the `metrics` events the stream sends every 5 s, collected from page
 * load whatever page is showing, so the charts have something to draw when the Node page opens.
 */
import { useEffect, useState } from '/ui/vendor/htm-preact.mjs'
import { api, onEvents } from './api.js'

/** Ten minutes of 5-second samples, plus slack for a late one. */
const HISTORY_SECS = 600
const MAX_SAMPLES = 150

/**
 * @typedef {{ labels?: Record<string, string>, value: number, metricName?: string }} MetricValue
 * @typedef {{ name: string, help?: string, type?: string, values: MetricValue[] }} Metric
 * @typedef {{ at?: number, metrics: Metric[] }} Snapshot
 * @typedef {{ t: number, peers: number | null, pending: number | null, accepted: number | null, rss: number | null }} Sample
 */

/** @param {Snapshot | undefined} snap @param {string} name @returns {Metric | undefined} */
export function metric (snap, name) {
  return snap?.metrics?.find((m) => m.name === name)
}

/** Sum of a metric's values whose labels match `where` (null when the metric is absent). */
export function total (snap, name, where = {}) {
  const m = metric(snap, name)
  if (m === undefined) return null
  let sum = 0
  for (const v of m.values ?? []) {
    if (v.metricName !== undefined && v.metricName !== name) continue
    if (Object.entries(where).every(([k, want]) => v.labels?.[k] === want)) sum += Number(v.value) || 0
  }
  return sum
}

/**
 * A metric's values summed over every label but `by`: rows keyed by the `by` label values in order.
 * @returns {{ key: string[], value: number }[]}
 */
export function groupBy (snap, name, by) {
  const m = metric(snap, name)
  if (m === undefined) return []
  /** @type {Map<string, { key: string[], value: number }>} */
  const rows = new Map()
  for (const v of m.values ?? []) {
    if (v.metricName !== undefined && v.metricName !== name) continue
    const key = by.map((l) => String(v.labels?.[l] ?? '—'))
    const id = JSON.stringify(key)
    const row = rows.get(id)
    if (row === undefined) rows.set(id, { key, value: Number(v.value) || 0 })
    else row.value += Number(v.value) || 0
  }
  return [...rows.values()].sort((a, b) => a.key.join('\u0000').localeCompare(b.key.join('\u0000')))
}

/** Seconds, whether `at` came as seconds or milliseconds. */
function atSecs (snap) {
  const at = Number(snap?.at)
  if (!Number.isFinite(at) || at <= 0) return Date.now() / 1000
  return at > 1e11 ? at / 1000 : at
}

/** @param {Snapshot} snap @returns {Sample} */
function sampleOf (snap) {
  return {
    t: atSecs(snap),
    peers: total(snap, 'cmesh_peers_connected'),
    pending: total(snap, 'cmesh_verification_queue', { state: 'pending' }),
    accepted: total(snap, 'cmesh_gossip_verdicts_total', { verdict: 'accept' }),
    rss: total(snap, 'process_resident_memory_bytes')
  }
}

/** @type {Snapshot | undefined} */
let latest
/** @type {Sample[]} */
let samples = []
/** @type {Set<() => void>} */
const listeners = new Set()

/** @param {Snapshot} snap */
function record (snap) {
  if (snap === undefined || !Array.isArray(snap.metrics)) return
  const s = sampleOf(snap)
  const last = samples[samples.length - 1]
  if (last !== undefined && s.t <= last.t) {
    // A repeat (the GET and an event for the same instant) or a clock step back: keep the newer figures only.
    if (s.t === last.t) samples = [...samples.slice(0, -1), s]
    else samples = [s]
  } else {
    samples = [...samples.filter((x) => x.t >= s.t - HISTORY_SECS), s].slice(-MAX_SAMPLES)
  }
  latest = snap
  for (const fn of [...listeners]) fn()
}

let started = false

/** Starts collecting (once): the current figures now, then every `metrics` event. */
export function startMetricsHistory () {
  if (started) return
  started = true
  onEvents(['metrics'], (data) => record(data))
  onEvents(['resync'], () => { api('/v1/metrics').then(record, () => {}) })
  api('/v1/metrics').then(record, () => {})
}

/** The latest snapshot and the history, re-rendering on each new sample. */
export function useMetrics () {
  const [, setTick] = useState(0)
  useEffect(() => {
    const fn = () => setTick((n) => n + 1)
    listeners.add(fn)
    return () => { listeners.delete(fn) }
  }, [])
  return { latest, samples }
}
