/**
 * Requests: broadcast an RFP (every field `cmesh rfp create` sends) and follow this node's requests
 * from bids to contract: the bids, the declines, the policy's refusals, who was chosen and why, and
 * each step so far.
 */
import { html, useEffect, useMemo, useRef, useState } from '/ui/vendor/htm-preact.mjs'
import { api } from '../api.js'
import { refresh, useResource } from '../resource.js'
import { Card, Did, Empty, ErrorAlert, Facts, LevelBadge, Loading, ShortId, SimulatedBadge, StateBadge, StoredFailure, Value, endedFact } from '../components.js'
import { LEVELS, LEVEL_HELP, formatDuration, formatTime, formatWei, groupDigits, relativeTime } from '../format.js'

const DEFAULTS = {
  cpus: '1',
  mem: '1G',
  disk: '10G',
  network: '10G',
  country: '',
  region: '',
  role: 'default',
  userData: '',
  scheme: 'vm.ssh',
  tdx: false,
  floor: 'Software',
  maxPrice: '',
  wifAudience: '',
  window: '5',
  duration: '3600'
}

/** An integer field as a number when it reads as one; otherwise as typed, for the node to refuse with its reason. */
function intOrRaw (text) {
  const t = text.trim()
  return /^-?\d+$/.test(t) ? Number(t) : t
}

/** UTF-8 text → base64 (btoa alone takes Latin-1 only). */
function base64Utf8 (text) {
  let bin = ''
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b)
  return btoa(bin)
}

/** The POST /v1/rfps body, shaped as `cmesh rfp create` sends it; empty optional fields are left out. */
function rfpBody (f) {
  /** @type {Record<string, unknown>} */
  const body = {}
  if (f.cpus.trim() !== '') body.cpus = intOrRaw(f.cpus)
  if (f.mem.trim() !== '') body.mem = f.mem.trim()
  if (f.disk.trim() !== '') body.disk = f.disk.trim()
  if (f.network.trim() !== '') body.network = f.network.trim()
  if (f.country.trim() !== '' || f.region.trim() !== '') {
    body.location = {
      ...(f.country.trim() !== '' ? { country: f.country.trim() } : {}),
      ...(f.region.trim() !== '' ? { region: f.region.trim() } : {})
    }
  }
  if (f.role.trim() !== '') body.role = f.role.trim()
  if (f.userData !== '') body.userDataBase64 = base64Utf8(f.userData)
  if (f.scheme.trim() !== '') body.scheme = f.scheme.trim()
  if (f.tdx) body.tdx = true
  body.floor = f.floor
  if (f.maxPrice.trim() !== '') body.maxPriceWei = f.maxPrice.trim()
  if (f.wifAudience.trim() !== '') body.wifAudience = f.wifAudience.trim()
  if (f.window.trim() !== '') body.windowSecs = intOrRaw(f.window)
  if (f.duration.trim() !== '') body.durationSecs = intOrRaw(f.duration)
  return body
}

function Field ({ id, label, hint, className = '', children }) {
  return html`
    <div class=${`field ${className}`}>
      <label for=${id}>${label}</label>
      ${children}
      ${hint !== undefined ? html`<span class="hint" id=${`${id}-hint`}>${hint}</span>` : null}
    </div>`
}

function RfpForm ({ onCreated }) {
  const [form, setForm] = useState(DEFAULTS)
  const [error, setError] = useState(undefined)
  const [created, setCreated] = useState(undefined)
  const [busy, setBusy] = useState(false)
  const text = (key) => ({
    id: `rfp-${key === 'maxPrice' ? 'max-price' : key === 'wifAudience' ? 'wif-audience' : key === 'userData' ? 'user-data' : key}`,
    name: `rfp-${key === 'maxPrice' ? 'max-price' : key === 'wifAudience' ? 'wif-audience' : key === 'userData' ? 'user-data' : key}`,
    value: form[key],
    onInput: (e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, [key]: v })) }
  })

  const submit = async (e) => {
    e.preventDefault()
    // A second press while the first is on its way would broadcast twice.
    if (busy) return
    setBusy(true)
    setError(undefined)
    setCreated(undefined)
    try {
      const res = await api('/v1/rfps', { method: 'POST', body: rfpBody(form) })
      setCreated(res)
      onCreated(res.id)
    } catch (err) {
      // The values stay as typed so the operator corrects the one the node named.
      setError(err)
    } finally {
      setBusy(false)
    }
  }

  return html`
    <${Card} title="New request for proposals" id="rfp-card">
      <form id="rfp-form" class="rfp-form" noValidate onSubmit=${submit} aria-busy=${busy ? 'true' : 'false'} aria-describedby="rfp-form-note">
        <fieldset>
          <legend>Machine</legend>
          <div class="form-grid">
            <${Field} id="rfp-cpus" label="vCPUs" hint="1–4096"><input type="number" min="1" max="4096" step="1" inputmode="numeric" required aria-describedby="rfp-cpus-hint" ...${text('cpus')} /><//>
            <${Field} id="rfp-mem" label="Memory" hint="e.g. 512M, 4G"><input type="text" required spellcheck=${false} autocomplete="off" aria-describedby="rfp-mem-hint" ...${text('mem')} /><//>
            <${Field} id="rfp-disk" label="Disk" hint="e.g. 20G"><input type="text" required spellcheck=${false} autocomplete="off" aria-describedby="rfp-disk-hint" ...${text('disk')} /><//>
            <${Field} id="rfp-network" label="Network quota" hint="e.g. 100G"><input type="text" spellcheck=${false} autocomplete="off" aria-describedby="rfp-network-hint" ...${text('network')} /><//>
            <${Field} id="rfp-scheme" label="Scheme" hint="how you reach it"><input type="text" spellcheck=${false} autocomplete="off" list="rfp-scheme-options" aria-describedby="rfp-scheme-hint" ...${text('scheme')} /><//>
            <div class="field field-check">
              <input type="checkbox" id="rfp-tdx" name="rfp-tdx" checked=${form.tdx} onChange=${(e) => { const v = e.currentTarget.checked; setForm((f) => ({ ...f, tdx: v })) }} />
              <label for="rfp-tdx">TDX machine</label>
            </div>
          </div>
          <datalist id="rfp-scheme-options"><option value="vm.ssh"></option></datalist>
        </fieldset>
        <fieldset>
          <legend>Where and who</legend>
          <div class="form-grid">
            <${Field} id="rfp-country" label="Country" hint="optional"><input type="text" spellcheck=${false} autocomplete="off" aria-describedby="rfp-country-hint" ...${text('country')} /><//>
            <${Field} id="rfp-region" label="Region" hint="optional"><input type="text" spellcheck=${false} autocomplete="off" aria-describedby="rfp-region-hint" ...${text('region')} /><//>
            <${Field} id="rfp-floor" label="Verified floor" hint="lowest level accepted">
              <select id="rfp-floor" name="rfp-floor" aria-describedby="rfp-floor-hint" value=${form.floor} onChange=${(e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, floor: v })) }}>
                ${LEVELS.map((l) => html`<option value=${l} title=${LEVEL_HELP[l]}>${l}</option>`)}
              </select>
            <//>
            <${Field} id="rfp-role" label="Role" hint="the machine runs under"><input type="text" spellcheck=${false} autocomplete="off" aria-describedby="rfp-role-hint" ...${text('role')} /><//>
            <${Field} id="rfp-wif-audience" label="Workload token audience" hint="optional; default: your DID" className="span-2"><input type="text" spellcheck=${false} autocomplete="off" aria-describedby="rfp-wif-audience-hint" ...${text('wifAudience')} /><//>
          </div>
        </fieldset>
        <fieldset>
          <legend>Terms</legend>
          <div class="form-grid">
            <${Field} id="rfp-max-price" label="Max price (wei)" className="span-2" hint=${form.maxPrice.trim() !== '' && /^\d+$/.test(form.maxPrice.trim()) ? `${groupDigits(form.maxPrice.trim())} wei for the whole contract` : 'required; cap for the whole contract'}>
              <input type="text" inputmode="numeric" required aria-required="true" spellcheck=${false} autocomplete="off" aria-describedby="rfp-max-price-hint" placeholder="e.g. 1000000000000000000" ...${text('maxPrice')} />
            <//>
            <${Field} id="rfp-window" label="Bid window (s)" hint="1–600"><input type="number" min="1" max="600" step="1" inputmode="numeric" aria-describedby="rfp-window-hint" ...${text('window')} /><//>
            <${Field} id="rfp-duration" label="Duration (s)" hint=${/^\d+$/.test(form.duration.trim()) ? formatDuration(Number(form.duration)) : '60–31622400'}><input type="number" min="60" max="31622400" step="60" inputmode="numeric" aria-describedby="rfp-duration-hint" ...${text('duration')} /><//>
            <${Field} id="rfp-user-data" label="User data: script the machine runs first" className="span-2" hint="optional; sent sealed, only to the accepted provider">
              <textarea rows="1" spellcheck=${false} aria-describedby="rfp-user-data-hint" ...${text('userData')}></textarea>
            <//>
          </div>
        </fieldset>
        <div class="form-actions">
          <button type="submit" id="rfp-submit" class="btn btn-primary">${busy ? 'Broadcasting…' : 'Broadcast RFP'}</button>
          <span class="muted small" id="rfp-form-note">The node checks every field; a refusal shows here with its reason.</span>
        </div>
        <${ErrorAlert} error=${error} id="rfp-error" always=${true} />
        ${created !== undefined
          ? html`<p class="alert alert-ok" role="status">Broadcast as <a href=${`#/requests/${encodeURIComponent(created.id)}`}><${ShortId} id=${created.id} /></a>${created.uri !== undefined ? html` · <span class="mono small" title=${created.uri}>${created.uri}</span>` : null}</p>`
          : null}
      </form>
    <//>`
}

function RequestList ({ list, selected }) {
  const requests = (Array.isArray(list.data) ? list.data : []).filter((c) => c.role === 'requester')
  // A request just broadcast may not be listed yet; it is shown (and selected) at once all the same.
  const pending = selected !== undefined && !requests.some((c) => c.id === selected)
  return html`
    <${Card} title="Your requests" id="requests-list">
      <${ErrorAlert} error=${list.error} />
      ${list.loading
        ? html`<${Loading} />`
        : requests.length === 0 && !pending
          ? html`<${Empty}>No request yet: broadcast one above.</${Empty}>`
          : html`
            <ul class="select-list">
              ${pending
                ? html`<li data-rfp=${selected} class="selected">
                    <a href=${`#/requests/${encodeURIComponent(selected)}`} aria-current="true">
                      <${ShortId} id=${selected} /> <span class="muted small">just broadcast</span>
                    </a>
                  </li>`
                : null}
              ${requests.map((c) => html`
                <li data-rfp=${c.id} key=${c.id} class=${c.id === selected ? 'selected' : ''}>
                  <a href=${`#/requests/${encodeURIComponent(c.id)}`} aria-current=${c.id === selected ? 'true' : undefined}>
                    <span class="select-main"><${ShortId} id=${c.id} /> <${StateBadge} state=${c.state} /></span>
                    <span class="select-sub muted small">
                      ${c.costWei !== undefined ? html`<span class="mono">${formatWei(c.costWei, c.currency)}</span> · ` : null}
                      <span title=${formatTime(c.updatedAtUnixSecs)}>${relativeTime(c.updatedAtUnixSecs)}</span>
                    </span>
                  </a>
                </li>`)}
            </ul>`}
    <//>`
}

/** Why the chosen bid won, as far as the RFP view tells: the cheapest bid that the policy did not refuse. */
function choiceReason (rfp) {
  const chosen = rfp.chosen
  if (chosen === undefined) return undefined
  const refused = new Set((rfp.refused ?? []).map((r) => r.provider))
  const eligible = (rfp.bids ?? []).filter((b) => !refused.has(b.provider))
  let cheapest = true
  try {
    const cost = BigInt(chosen.costWei)
    cheapest = eligible.every((b) => BigInt(b.costWei) >= cost)
  } catch { /* costs that do not parse: say nothing about price */ }
  const counts = `${eligible.length} eligible of ${rfp.bids?.length ?? 0} bid${rfp.bids?.length === 1 ? '' : 's'}, ${refused.size} refused by policy`
  return cheapest ? `the cheapest eligible bid (${counts})` : `chosen by the node's policy (${counts})`
}

function Reasons ({ title, items, kind }) {
  if (!Array.isArray(items) || items.length === 0) return null
  return html`
    <h3>${title} (${items.length})</h3>
    <ul class="reason-list">
      ${items.map((d) => html`
        <li class=${`decline ${kind}`}>
          <code class="decline-code">${d.code}</code>
          <span> — ${d.detail}</span>
          <span class="muted small"> · <${Did} did=${d.provider} /></span>
        </li>`)}
    </ul>`
}

function Bids ({ rfp }) {
  const bids = rfp.bids ?? []
  if (bids.length === 0) return html`<h3>Bids</h3><${Empty}>No bid ${rfp.state === 'collecting' ? 'yet' : 'arrived'}.</${Empty}>`
  const refused = new Set((rfp.refused ?? []).map((r) => r.provider))
  return html`
    <h3>Bids (${bids.length})</h3>
    <div class="table-wrap">
      <table class="table table-zebra table-compact bids-table">
        <thead>
          <tr>
            <th scope="col">Provider</th><th scope="col" class="num">Cost</th><th scope="col">Verified</th>
            <th scope="col">Backend</th><th scope="col">Region</th><th scope="col">Billing</th><th scope="col">Expires</th>
          </tr>
        </thead>
        <tbody>
          ${bids.map((b) => {
            const isChosen = rfp.chosen?.provider === b.provider
            return html`
              <tr class=${isChosen ? 'row-chosen' : refused.has(b.provider) ? 'row-refused' : ''} data-bid=${b.provider}>
                <td><${Did} did=${b.provider} />${isChosen ? html` <span class="badge badge-good">chosen</span>` : null}${refused.has(b.provider) ? html` <span class="badge badge-bad">refused</span>` : null}</td>
                <td class="num mono">${formatWei(b.costWei, b.currency)}</td>
                <td><${LevelBadge} level=${b.verified} kind="verified" simulated=${b.simulated} />${b.simulated ? html` <${SimulatedBadge} />` : null}</td>
                <td>${b.backend ?? '—'}</td>
                <td>${b.region ?? '—'}</td>
                <td>${b.frequency ?? '—'}${b.periodSecs !== undefined ? html` <span class="muted">/ ${formatDuration(b.periodSecs)}</span>` : null}</td>
                <td title=${formatTime(b.expiresAtUnixSecs)}>${relativeTime(b.expiresAtUnixSecs)}</td>
              </tr>`
          })}
        </tbody>
      </table>
    </div>`
}

function RfpDetail ({ id }) {
  const res = useResource(id !== undefined ? `/v1/rfps/${encodeURIComponent(id)}` : undefined, { events: ['rfp', 'contract', 'payment'] })
  const rfp = res.data
  const reason = useMemo(() => (rfp !== undefined ? choiceReason(rfp) : undefined), [rfp])
  const box = useRef(null)
  // The detail sits under the form: bring it into view when a request is picked or just broadcast.
  useEffect(() => { if (id !== undefined) box.current?.scrollIntoView({ block: 'nearest' }) }, [id])

  if (id === undefined) {
    return html`<section id="rfp-detail" class="card detail" aria-label="Request detail"><${Empty}>Select a request to see its bids and progress.</${Empty}></section>`
  }
  return html`
    <section id="rfp-detail" ref=${box} class="card detail" data-state=${rfp?.state ?? (res.error?.status === 404 ? 'not-found' : 'loading')} aria-labelledby="rfp-detail-title">
      <div class="card-head">
        <h2 id="rfp-detail-title">Request <${ShortId} id=${id} head=${14} /></h2>
        ${rfp !== undefined ? html`<${StateBadge} state=${rfp.state} />` : null}
        <span class="visually-hidden" role="status">${rfp !== undefined ? `State: ${rfp.state}` : ''}</span>
      </div>
      ${res.error?.status === 404
        ? html`<p class="muted">The node does not know this request (yet). It appears here as soon as the node records it.</p>`
        : html`<${ErrorAlert} error=${res.error} />`}
      ${rfp === undefined
        ? (res.error === undefined ? html`<${Loading} />` : null)
        : html`
          <${StoredFailure} record=${rfp} />
          <${Facts} items=${[
            endedFact(rfp),
            ['URI', rfp.uri !== undefined ? html`<span class="mono small wrap">${rfp.uri}</span>` : undefined],
            ['Chosen', rfp.chosen !== undefined
              ? html`<${Did} did=${rfp.chosen.provider} /> at <span class="mono">${formatWei(rfp.chosen.costWei, rfp.chosen.currency)}</span><div class="small muted choice-reason">${reason}</div>`
              : undefined],
            ['Payment', rfp.payment?.txid !== undefined ? html`<${ShortId} id=${rfp.payment.txid} head=${12} tail=${8} />` : rfp.payment !== undefined ? html`<${Value} value=${rfp.payment} />` : undefined],
            ['Contract', ['paid', 'provisioning', 'ready', 'unresponsive', 'ended', 'accepted', 'awaiting-payment'].includes(rfp.state)
              ? html`<a href=${`#/contracts/${encodeURIComponent(rfp.id ?? id)}`}>open in Contracts</a>`
              : undefined]
          ]} />
          <h3>Progress</h3>
          ${rfp.progress?.length > 0
            ? html`<ol class="progress-steps">${rfp.progress.map((step, i) => html`<li class=${i === rfp.progress.length - 1 ? 'current' : ''}>${step}</li>`)}</ol>`
            : html`<${Empty}>No step yet.</${Empty}>`}
          <${Bids} rfp=${rfp} />
          <${Reasons} title="Refused by your policy" items=${rfp.refused} kind="refused" />
          <${Reasons} title="Declined by providers" items=${rfp.declines} kind="declined" />
        `}
    </section>`
}

export function RequestsPage ({ param }) {
  const list = useResource('/v1/contracts', { events: ['rfp', 'contract', 'payment'] })
  const onCreated = (id) => {
    refresh('/v1/contracts')
    location.hash = `#/requests/${encodeURIComponent(id)}`
  }
  return html`
    <div class="page-head">
      <h1 tabindex="-1">Requests</h1>
      <p class="muted">Ask the market for a machine; the node collects attested bids, applies your policy and accepts one.</p>
    </div>
    <${RfpForm} onCreated=${onCreated} />
    <div class="split">
      <${RequestList} list=${list} selected=${param} />
      <${RfpDetail} id=${param} key=${param ?? 'none'} />
    </div>`
}
