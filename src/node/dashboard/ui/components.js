/** Pieces every page uses: badges, DIDs, error alerts, copyable commands, key–value lists. */
import { html, useEffect, useRef, useState } from '/ui/vendor/htm-preact.mjs'
import { LEVEL_HELP, levelRank, shortDid, shortId } from './format.js'

/**
 * The node's `{ error, message }`, both shown, where the action happened. Load errors the banners
 * already explain (no answer, session refused) are left to them unless `always`.
 * @param {{ error?: { status?: number, code?: string, message?: string }, id?: string, always?: boolean, prefix?: string }} props
 */
export function ErrorAlert ({ error, id, always = false, prefix }) {
  if (error === undefined || error === null) return null
  if (!always && (error.status === 0 || error.status === 401)) return null
  return html`
    <div class="alert alert-error" role="alert" id=${id}>
      ${prefix !== undefined ? html`<span>${prefix} </span>` : null}<strong class="error-code">${error.code ?? 'ERROR'}</strong>${' '}<span class="error-message">${error.message ?? ''}</span>
    </div>`
}

/**
 * A stored contract's or RFP's `error`: while it is live, a failure (an alert with code and detail);
 * once it has ended, how it ended (e.g. REQUESTER), an outcome for the facts list, not an alert.
 */
export function StoredFailure ({ record }) {
  if (record.error === undefined || record.state === 'ended') return null
  return html`<${ErrorAlert} error=${{ code: record.error.code, message: record.error.detail }} />`
}

/** The "Ended" fact of a stored contract or RFP (undefined while it has not ended with a reason). */
export function endedFact (record) {
  return ['Ended', record.error !== undefined && record.state === 'ended' ? html`<code>${record.error.code}</code> ${record.error.detail}` : undefined]
}

/** A DID, shortened, with the full one in the title (and for copy-paste in selection). */
export function Did ({ did, me }) {
  if (typeof did !== 'string') return html`<span class="muted">—</span>`
  return html`<span class="did" title=${did}>${shortDid(did)}${me !== undefined && did === me ? html` <span class="badge badge-neutral">me</span>` : null}</span>`
}

/** A long id or hash, shortened, full in the title. */
export function ShortId ({ id, head, tail }) {
  if (typeof id !== 'string') return html`<span class="muted">—</span>`
  return html`<span class="mono" title=${id}>${shortId(id, head, tail)}</span>`
}

/**
 * An attestation level. `kind` adds the test hook class (`level-claimed` / `level-verified`);
 * the badge's shade rises with the rung.
 */
export function LevelBadge ({ level, kind, simulated = false }) {
  const rank = levelRank(level)
  const cls = ['badge', 'level', `level-rank-${rank < 0 ? 'none' : rank}`, kind !== undefined ? `level-${kind}` : ''].join(' ')
  const title = level !== undefined && level !== null
    ? `${kind === 'claimed' ? 'Claimed' : kind === 'verified' ? 'Verified' : 'Level'}: ${level}${LEVEL_HELP[level] !== undefined ? ` (${LEVEL_HELP[level]})` : ''}${simulated ? ' — rests on the TEST-ONLY simulated root' : ''}`
    : 'not verified yet'
  return html`<span class=${cls} title=${title}>${level ?? 'unverified'}</span>`
}

export function SimulatedBadge () {
  return html`<span class="badge badge-warn simulated" title="Verified against the TEST-ONLY simulated quote root, not Intel's: no real hardware guarantee">simulated</span>`
}

const STATE_TONE = {
  ready: 'good',
  paid: 'good',
  accepted: 'info',
  collecting: 'info',
  choosing: 'info',
  'awaiting-payment': 'info',
  provisioning: 'info',
  unresponsive: 'bad',
  failed: 'bad',
  'no-bids': 'bad',
  interrupted: 'bad',
  ended: 'neutral'
}

/** A contract or RFP state, coloured by whether it is going well, in progress, failed or over. */
export function StateBadge ({ state }) {
  const tone = STATE_TONE[state] ?? 'neutral'
  return html`<span class=${`badge state state-${tone}`} data-state-badge=${state}>${state ?? '—'}</span>`
}

/** Copies `text`; icon-like, so it carries its own accessible name. */
export function CopyButton ({ text, label }) {
  const [done, setDone] = useState(false)
  const timer = useRef(undefined)
  useEffect(() => () => clearTimeout(timer.current), [])
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text)
    } catch {
      // Older browsers or a denied permission: fall back to a hidden textarea and execCommand.
      const ta = document.createElement('textarea')
      ta.value = text
      ta.setAttribute('readonly', '')
      ta.className = 'offscreen'
      document.body.append(ta)
      ta.select()
      try { document.execCommand('copy') } finally { ta.remove() }
    }
    setDone(true)
    clearTimeout(timer.current)
    timer.current = setTimeout(() => setDone(false), 1500)
  }
  return html`<button type="button" class="btn btn-small" aria-label=${label} onClick=${copy}>${done ? 'Copied' : 'Copy'}</button>`
}

/** A shell command shown in <code> with a copy button. */
export function Command ({ text, label }) {
  return html`
    <div class="command">
      <code>${text}</code>
      <${CopyButton} text=${text} label=${label} />
    </div>`
}

/** A definition list of [term, value] pairs, skipping empty values. */
export function Facts ({ items, className = '' }) {
  const rows = items.filter(([, v]) => v !== undefined && v !== null && v !== false)
  if (rows.length === 0) return null
  return html`
    <dl class=${`facts ${className}`}>
      ${rows.map(([k, v]) => html`<div class="fact"><dt>${k}</dt><dd>${v}</dd></div>`)}
    </dl>`
}

/** Any JSON value as text, for fields whose shape the dashboard does not interpret. */
export function Value ({ value }) {
  if (value === undefined || value === null) return html`<span class="muted">—</span>`
  if (typeof value === 'boolean') return value ? 'yes' : 'no'
  if (typeof value === 'object') return html`<code class="json">${JSON.stringify(value)}</code>`
  return String(value)
}

/** A card: a titled section of a page. */
export function Card ({ title, id, actions, children, className = '' }) {
  const headingId = id !== undefined ? `${id}-title` : undefined
  return html`
    <section class=${`card ${className}`} id=${id} aria-labelledby=${headingId}>
      ${title !== undefined
        ? html`<div class="card-head"><h2 id=${headingId}>${title}</h2>${actions ?? null}</div>`
        : null}
      ${children}
    </section>`
}

export function Loading ({ what = 'Loading' }) {
  return html`<p class="muted loading" aria-live="polite">${what}…</p>`
}

export function Empty ({ children }) {
  return html`<p class="muted empty">${children}</p>`
}
