/**
 * Contracts, as requester and as provider: where each stands, the last heartbeat and its usage,
 * payments, how it ended; for a ready machine the commands to open the receipt and log in; and a
 * terminate button that asks twice.
 */
import { html, useEffect, useRef, useState } from '/ui/vendor/htm-preact.mjs'
import { api } from '../api.js'
import { refresh, useResource } from '../resource.js'
import { Card, Command, Did, Empty, ErrorAlert, Facts, Loading, ShortId, StateBadge, StoredFailure, Value, endedFact } from '../components.js'
import { formatDuration, formatNumber, formatTime, formatWei, relativeTime } from '../format.js'

/** States a terminate request no longer applies to. */
const OVER = new Set(['ended', 'failed', 'no-bids', 'interrupted'])

const contractPath = (id) => `/v1/contracts/${encodeURIComponent(id)}`

function ContractTable ({ list, selected }) {
  const contracts = Array.isArray(list.data) ? list.data : []
  if (list.loading) return html`<${Loading} />`
  if (contracts.length === 0) return html`<${Empty}>No contract yet, as requester or provider.</${Empty}>`
  return html`
    <div class="table-wrap">
      <table id="contracts-table" class="table table-zebra">
        <thead>
          <tr>
            <th scope="col">Contract</th><th scope="col">Role</th><th scope="col">State</th><th scope="col">Counterparty</th>
            <th scope="col" class="num">Cost</th><th scope="col">Payment tx</th><th scope="col">Valid to</th><th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          ${contracts.map((c) => html`
            <tr key=${c.id} data-contract=${c.id} class=${c.id === selected ? 'row-selected' : ''}>
              <td><a href=${`#/contracts/${encodeURIComponent(c.id)}`} aria-current=${c.id === selected ? 'true' : undefined}><${ShortId} id=${c.id} /></a></td>
              <td><span class="badge badge-neutral">${c.role}</span></td>
              <td><${StateBadge} state=${c.state} />${c.error !== undefined ? html` <code class="small" title=${c.error.detail}>${c.error.code}</code>` : null}</td>
              <td><${Did} did=${c.counterparty} /></td>
              <td class="num mono">${formatWei(c.costWei, c.currency)}</td>
              <td>${c.payment?.txid !== undefined ? html`<${ShortId} id=${c.payment.txid} head=${10} tail=${6} />` : html`<span class="muted">—</span>`}</td>
              <td title=${formatTime(c.validToUnixSecs)}>${c.validToUnixSecs !== undefined ? relativeTime(c.validToUnixSecs) : '—'}</td>
              <td title=${formatTime(c.updatedAtUnixSecs)}>${relativeTime(c.updatedAtUnixSecs)}</td>
            </tr>`)}
        </tbody>
      </table>
    </div>`
}

function Usage ({ usage }) {
  if (usage === undefined || usage === null) return null
  return html`<${Facts} className="facts-inline" items=${[
    ['Uptime', usage.uptimeSecs !== undefined ? formatDuration(usage.uptimeSecs) : undefined],
    ['CPU time', usage.cpuMillis !== undefined ? `${formatNumber(usage.cpuMillis / 1000, 1)} s` : undefined],
    ['Memory', usage.memMiB !== undefined ? `${formatNumber(usage.memMiB)} MiB` : undefined],
    ...Object.entries(usage).filter(([k]) => !['uptimeSecs', 'cpuMillis', 'memMiB'].includes(k)).map(([k, v]) => [k, html`<${Value} value=${v} />`])
  ]} />`
}

function Heartbeat ({ hb, state }) {
  if (hb === undefined) return html`<h3>Heartbeat</h3><${Empty}>No heartbeat ${state === 'ready' ? 'yet' : 'recorded'}.</${Empty}>`
  const last = hb.recordedAtUnixSecs ?? hb.atUnixSecs
  // Two missed periods is when the requester starts calling the provider unresponsive.
  const late = state === 'ready' && hb.periodSecs > 0 && Date.now() / 1000 - last > 2 * hb.periodSecs
  return html`
    <h3>Heartbeat</h3>
    <${Facts} items=${[
      ['Sequence', formatNumber(hb.seq)],
      ['Last', html`<span title=${formatTime(last)}>${relativeTime(last)}</span>${late ? html` <span class="badge badge-warn">late</span>` : null}`],
      ['Period', formatDuration(hb.periodSecs)]
    ]} />
    <${Usage} usage=${hb.usage} />`
}

function Termination ({ t }) {
  if (t === undefined) return null
  return html`
    <h3>Termination</h3>
    <${Facts} items=${[
      ['Reason', html`<code>${t.reason}</code>`],
      ['By', typeof t.by === 'string' && t.by.startsWith('did:') ? html`<${Did} did=${t.by} />` : t.by],
      ['At', formatTime(t.atUnixSecs)],
      ['Detail', t.detail !== undefined && t.detail !== '' ? t.detail : undefined],
      ['Record', t.uri !== undefined ? html`<span class="mono small wrap">${t.uri}</span>` : undefined]
    ]} />
    ${t.usage !== undefined ? html`<p class="small muted">Final usage</p><${Usage} usage=${t.usage} />` : null}`
}

function Payments ({ c }) {
  const period = Array.isArray(c.periodPayments) ? c.periodPayments : []
  if (c.payment === undefined && period.length === 0) return null
  const columns = [...new Set(period.flatMap((p) => Object.keys(p)))]
  return html`
    <h3>Payments</h3>
    ${c.payment !== undefined
      ? html`<${Facts} items=${Object.entries(c.payment).map(([k, v]) => [k === 'txid' ? 'Transaction' : k, k === 'txid' ? html`<span class="mono small wrap">${v}</span>` : html`<${Value} value=${v} />`])} />`
      : null}
    ${period.length > 0
      ? html`
        <div class="table-wrap">
          <table class="table table-zebra table-compact">
            <caption class="caption">Period payments</caption>
            <thead><tr>${columns.map((k) => html`<th scope="col">${k}</th>`)}</tr></thead>
            <tbody>${period.map((p) => html`<tr>${columns.map((k) => html`<td class=${k === 'txid' ? 'mono' : ''}>${k === 'txid' ? html`<${ShortId} id=${p[k]} />` : html`<${Value} value=${p[k]} />`}</td>`)}</tr>`)}</tbody>
          </table>
        </div>`
      : null}`
}

function SshAccess ({ id }) {
  const ssh = useResource(`${contractPath(id)}/ssh`, { events: ['contract'] })
  return html`
    <h3>Access</h3>
    ${ssh.error?.status === 404
      ? html`<p class="muted">No receipt yet: the provider has not sealed one.</p>`
      : html`<${ErrorAlert} error=${ssh.error} />`}
    ${ssh.data === undefined
      ? (ssh.error === undefined ? html`<${Loading} />` : null)
      : html`
        <${Facts} items=${[
          ['Host', html`<span class="mono">${ssh.data.user}@${ssh.data.host}:${ssh.data.port}</span>`],
          ['Host key', html`<span class="mono small wrap">${ssh.data.hostKeyFingerprint}</span>`],
          ['Valid to', formatTime(ssh.data.validToUnixSecs)]
        ]} />
        <p class="small">Open the receipt (writes the private key on this machine; the page never sees it):</p>
        <${Command} text=${ssh.data.open} label="Copy the receipt open command" />
        <p class="small">Then log in:</p>
        <${Command} text=${ssh.data.ssh} label="Copy the ssh command" />`}`
}

function Terminate ({ id, onDone }) {
  const [step, setStep] = useState('idle')
  const [detail, setDetail] = useState('')
  const [error, setError] = useState(undefined)
  const confirm = async () => {
    if (step === 'sending') return
    setStep('sending')
    setError(undefined)
    try {
      await api(`${contractPath(id)}/terminate`, { method: 'POST', body: detail.trim() !== '' ? { detail: detail.trim() } : {} })
      setStep('idle')
      setDetail('')
      onDone()
    } catch (err) {
      setError(err)
      setStep('confirm')
    }
  }
  return html`
    <div class="terminate">
      ${step === 'idle'
        ? html`<button type="button" class="btn btn-danger-outline" id="terminate-start" onClick=${() => setStep('confirm')}>Terminate…</button>`
        : html`
          <div class="confirm-box" role="group" aria-labelledby="terminate-question">
            <p id="terminate-question"><strong>Terminate this contract?</strong> The machine is stopped and the counterparty told why.</p>
            <div class="field">
              <label for="terminate-detail">Reason for the counterparty (optional)</label>
              <input id="terminate-detail" name="terminate-detail" type="text" maxlength="256" value=${detail} onInput=${(e) => setDetail(e.currentTarget.value)} />
            </div>
            <div class="form-actions">
              <button type="button" class="btn btn-danger" id="terminate-confirm" onClick=${confirm}>${step === 'sending' ? 'Terminating…' : 'Confirm terminate'}</button>
              <button type="button" class="btn" id="terminate-cancel" onClick=${() => { setStep('idle'); setError(undefined) }}>Cancel</button>
            </div>
          </div>`}
      <${ErrorAlert} error=${error} id="terminate-error" always=${true} />
    </div>`
}

function ContractDetail ({ id }) {
  const res = useResource(id !== undefined ? contractPath(id) : undefined, { events: ['contract', 'payment'] })
  const c = res.data
  const box = useRef(null)
  // The detail sits under a possibly long table: bring it into view when a contract is picked.
  useEffect(() => { if (id !== undefined) box.current?.scrollIntoView({ block: 'nearest' }) }, [id])
  if (id === undefined) {
    return html`<section id="contract-detail" class="card detail" aria-label="Contract detail"><${Empty}>Select a contract to see its heartbeats, payments and access.</${Empty}></section>`
  }
  const done = () => {
    refresh(contractPath(id))
    refresh('/v1/contracts')
  }
  return html`
    <section id="contract-detail" ref=${box} class="card detail" data-state=${c?.state ?? (res.error?.status === 404 ? 'not-found' : 'loading')} aria-labelledby="contract-detail-title">
      <div class="card-head">
        <h2 id="contract-detail-title">Contract <${ShortId} id=${id} head=${14} /></h2>
        ${c !== undefined ? html`<span class="badge badge-neutral">${c.role}</span> <${StateBadge} state=${c.state} />` : null}
        <span class="visually-hidden" role="status">${c !== undefined ? `State: ${c.state}` : ''}</span>
      </div>
      ${res.error?.status === 404 ? html`<p class="muted">The node has no contract with this id.</p>` : html`<${ErrorAlert} error=${res.error} />`}
      ${c === undefined
        ? (res.error === undefined ? html`<${Loading} />` : null)
        : html`
          <${StoredFailure} record=${c} />
          <${Facts} items=${[
            endedFact(c),
            ['Counterparty', c.counterparty !== undefined ? html`<${Did} did=${c.counterparty} />` : undefined],
            ['Cost', c.costWei !== undefined ? html`<span class="mono">${formatWei(c.costWei, c.currency)}</span>` : undefined],
            ['Backend', c.backend],
            ['Started', c.startedAtUnixSecs !== undefined ? formatTime(c.startedAtUnixSecs) : undefined],
            ['Valid to', c.validToUnixSecs !== undefined ? html`${formatTime(c.validToUnixSecs)} <span class="muted">(${relativeTime(c.validToUnixSecs)})</span>` : undefined],
            ['Updated', formatTime(c.updatedAtUnixSecs)],
            ['Accept', c.accept !== undefined ? html`<${ShortId} id=${c.accept} />` : undefined],
            ['RFP', c.role === 'requester' ? html`<a href=${`#/requests/${encodeURIComponent(c.id)}`}>bids and progress</a>` : undefined]
          ]} />
          ${c.role === 'requester' && c.state === 'ready' ? html`<${SshAccess} id=${c.id} />` : null}
          <${Heartbeat} hb=${c.heartbeat} state=${c.state} />
          <${Payments} c=${c} />
          <${Termination} t=${c.termination} />
          ${!OVER.has(c.state) ? html`<${Terminate} id=${c.id} onDone=${done} />` : null}`}
    </section>`
}

export function ContractsPage ({ param }) {
  const list = useResource('/v1/contracts', { events: ['contract', 'payment', 'rfp'] })
  return html`
    <div class="page-head">
      <h1 tabindex="-1">Contracts</h1>
      <p class="muted">Every contract this node is party to, as requester or provider, newest first.</p>
    </div>
    <${ErrorAlert} error=${list.error} />
    <div class="stack">
      <${Card} title="Contracts" id="contracts-card">
        <${ContractTable} list=${list} selected=${param} />
      <//>
      ${param !== undefined || (Array.isArray(list.data) && list.data.length > 0)
        ? html`<${ContractDetail} id=${param} key=${param ?? 'none'} />`
        : null}
    </div>`
}
