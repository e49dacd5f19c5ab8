/**
 * Trust: this node's own vouches and denouncements, a form to publish one, and the trust graph as
 * the contract policy sees it (mode and depth from the node's configuration).
 */
import { html, useState } from '/ui/vendor/htm-preact.mjs'
import { api } from '../api.js'
import { refresh, useResource } from '../resource.js'
import { Card, Did, Empty, ErrorAlert, Loading, ShortId } from '../components.js'
import { TrustGraph } from '../trust-graph.js'
import { formatTime } from '../format.js'

const MODE_HELP = {
  open: 'any provider not denounced may win a contract',
  'only-me': 'only providers this node vouches for directly',
  vouched: 'providers reached by vouches from this node, within the depth',
  mutuals: 'providers this node vouches for that vouch for it too'
}

function KindBadge ({ kind }) {
  return html`<span class=${`badge ${kind === 'denounce' ? 'badge-bad' : 'badge-good'}`}>${kind}</span>`
}

function StatementForm () {
  const [form, setForm] = useState({ kind: 'vouch', subject: '', note: '' })
  const [error, setError] = useState(undefined)
  const [done, setDone] = useState(undefined)
  const [busy, setBusy] = useState(false)
  const set = (key) => (e) => { const v = e.currentTarget.value; setForm((f) => ({ ...f, [key]: v })) }
  const submit = async (e) => {
    e.preventDefault()
    if (busy) return
    setBusy(true)
    setError(undefined)
    setDone(undefined)
    try {
      const body = { kind: form.kind, subject: form.subject.trim(), ...(form.note.trim() !== '' ? { note: form.note.trim() } : {}) }
      await api('/v1/trust', { method: 'POST', body })
      setDone(`${form.kind === 'vouch' ? 'Vouched for' : 'Denounced'} ${body.subject}.`)
      setForm((f) => ({ ...f, subject: '', note: '' }))
      refresh('/v1/trust')
      refresh('/v1/trust/graph')
    } catch (err) {
      setError(err)
    } finally {
      setBusy(false)
    }
  }
  return html`
    <form id="trust-form" class="trust-form" noValidate onSubmit=${submit}>
      <div class="form-grid form-grid-trust">
        <div class="field">
          <label for="trust-kind">Statement</label>
          <select id="trust-kind" name="trust-kind" value=${form.kind} onChange=${set('kind')}>
            <option value="vouch">Vouch for</option>
            <option value="denounce">Denounce</option>
          </select>
        </div>
        <div class="field field-grow">
          <label for="trust-subject">Subject DID</label>
          <input id="trust-subject" name="trust-subject" type="text" required spellcheck=${false} autocomplete="off" placeholder="did:key:z6Mk…" value=${form.subject} onInput=${set('subject')} />
        </div>
        <div class="field field-grow">
          <label for="trust-note">Note (optional)</label>
          <input id="trust-note" name="trust-note" type="text" autocomplete="off" value=${form.note} onInput=${set('note')} />
        </div>
      </div>
      <div class="form-actions">
        <button type="submit" id="trust-submit" class=${`btn ${form.kind === 'denounce' ? 'btn-danger' : 'btn-primary'}`}>${busy ? 'Publishing…' : form.kind === 'denounce' ? 'Publish denouncement' : 'Publish vouch'}</button>
        <span class="muted small">Signed by this node and gossiped to the network.</span>
      </div>
      <${ErrorAlert} error=${error} id="trust-error" always=${true} />
      ${done !== undefined ? html`<p class="alert alert-ok" role="status">${done}</p>` : null}
    </form>`
}

function OwnStatements () {
  const own = useResource('/v1/trust', { events: ['trust'] })
  const rows = Array.isArray(own.data) ? own.data : []
  return html`
    <${Card} title="Your statements" id="trust-own">
      <${StatementForm} />
      <${ErrorAlert} error=${own.error} />
      ${own.loading
        ? html`<${Loading} />`
        : rows.length === 0
          ? html`<${Empty}>No vouch or denouncement published by this node yet.</${Empty}>`
          : html`
            <div class="table-wrap">
              <table id="trust-table" class="table table-zebra">
                <thead><tr><th scope="col">Kind</th><th scope="col">Subject</th><th scope="col">Note</th><th scope="col">Published</th><th scope="col">Record</th></tr></thead>
                <tbody>
                  ${rows.map((s) => html`
                    <tr key=${s.cid ?? s.uri} data-statement=${s.subject}>
                      <td><${KindBadge} kind=${s.kind} /></td>
                      <td><${Did} did=${s.subject} /></td>
                      <td>${s.note ?? html`<span class="muted">—</span>`}</td>
                      <td>${formatTime(s.createdAtUnixSecs)}</td>
                      <td><${ShortId} id=${s.uri ?? s.cid} head=${16} tail=${8} /></td>
                    </tr>`)}
                </tbody>
              </table>
            </div>`}
    <//>`
}

function DidList ({ title, dids, me, id }) {
  const list = Array.isArray(dids) ? dids : []
  return html`
    <div class="did-group" id=${id}>
      <h3>${title} <span class="count">${list.length}</span></h3>
      ${list.length === 0
        ? html`<p class="muted small">none</p>`
        : html`<ul class="did-list">${list.map((d) => html`<li><${Did} did=${d} me=${me} /></li>`)}</ul>`}
    </div>`
}

function Graph () {
  const res = useResource('/v1/trust/graph', { events: ['trust'] })
  const g = res.data
  return html`
    <${Card} title="Trust graph" id="trust-graph">
      <${ErrorAlert} error=${res.error} />
      ${g === undefined
        ? (res.error === undefined ? html`<${Loading} />` : null)
        : html`
          <p class="graph-mode">
            Policy mode <span class="badge badge-info" id="trust-mode">${g.mode}</span> at depth <strong id="trust-depth">${g.depth}</strong><span class="muted"> — ${MODE_HELP[g.mode] ?? ''}</span>
          </p>
          <div class="graph-layout">
            <${TrustGraph} graph=${g} />
            <div class="graph-lists">
              <${DidList} title="Direct (vouched by me)" dids=${g.direct} me=${g.me} id="trust-direct" />
              <${DidList} title=${`Vouched within depth ${g.depth}`} dids=${g.vouched} me=${g.me} id="trust-vouched" />
              <${DidList} title="Mutuals" dids=${g.mutuals} me=${g.me} id="trust-mutuals" />
              <${DidList} title="Denounced" dids=${g.denounced} me=${g.me} id="trust-denounced" />
            </div>
          </div>`}
    <//>`
}

export function TrustPage () {
  return html`
    <div class="page-head">
      <h1 tabindex="-1">Trust</h1>
      <p class="muted">Vouches and denouncements decide which providers your requests may accept.</p>
    </div>
    <${OwnStatements} />
    <${Graph} />`
}
