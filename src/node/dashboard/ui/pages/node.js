/**
 * Node: what this node is (identity, roles, addresses, attestation root), what it holds, its
 * backends, the counters that tell whether gossip, sync and attestation are healthy, and ten
 * minutes of a few gauges drawn from the `metrics` events.
 */
import { html, useMemo } from '/ui/vendor/htm-preact.mjs'
import { useResource } from '../resource.js'
import { useMetrics, groupBy, total } from '../metrics.js'
import { TimeSeries, COLORS } from '../chart.js'
import { Card, Empty, ErrorAlert, Facts, Loading, Value } from '../components.js'
import { formatBytes, formatNumber } from '../format.js'

function Status ({ status }) {
  const s = status.data
  if (s === undefined) return html`<${Card} title="This node"><${ErrorAlert} error=${status.error} />${status.error === undefined ? html`<${Loading} />` : null}<//>`
  const attest = s.attest ?? {}
  return html`
    <${Card} title="This node" id="node-status">
      <${ErrorAlert} error=${status.error} />
      ${attest.simulated
        ? html`<div class="notice notice-warn" id="simulated-warning"><strong>TEST-ONLY attestation.</strong> This node uses the simulated quote provider: its TDX evidence proves nothing about real hardware and is labelled simulated everywhere.</div>`
        : null}
      <${Facts} items=${[
        ['Peer id', html`<span class="mono small wrap">${s.peerId}</span>`],
        ['DID', html`<span class="mono small wrap">${s.did}</span>`],
        ['Network', s.network],
        ['Roles', html`${(s.roles ?? []).map((r) => html`<span class="badge badge-info">${r}</span> `)}`],
        ['Peers', formatNumber(s.peers)],
        ['Listening on', (s.listen ?? []).length > 0
          ? html`<ul class="plain-list">${s.listen.map((a) => html`<li class="mono small wrap">${a}</li>`)}</ul>`
          : html`<span class="muted">nothing</span>`]
      ]} />
      <h3>Attestation</h3>
      <${Facts} items=${[
        ['Quote provider', html`<${Value} value=${attest.provider} />`],
        ['Root', html`<span class="mono small wrap">${typeof attest.root === 'string' ? attest.root : html`<${Value} value=${attest.root} />`}</span>${attest.simulated ? html` <span class="badge badge-warn">simulated</span>` : null}`],
        ['Offers', html`<${Value} value=${attest.offer} />`],
        ['Requires', html`<${Value} value=${attest.require} />`]
      ]} />
    <//>`
}

/** A number, or a map of reason → count as a short list ("—" when empty). */
function Counts ({ value }) {
  if (typeof value === 'number') return formatNumber(value)
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value)
    if (entries.length === 0) return html`<span class="muted">—</span>`
    return html`<span class="small">${entries.map(([k, n], i) => html`${i > 0 ? ', ' : ''}<code>${k}</code> ${typeof n === 'number' ? formatNumber(n) : JSON.stringify(n)}`)}</span>`
  }
  return html`<${Value} value=${value} />`
}

function Holdings ({ s }) {
  if (s === undefined) return null
  const tile = (label, value, note) => html`
    <div class="stat"><div class="stat-value">${value}</div><div class="stat-label">${label}</div>${note !== undefined ? html`<div class="stat-note muted small">${note}</div>` : null}</div>`
  return html`
    <${Card} title="Holdings and work" id="node-holdings">
      <div class="stats">
        ${tile('Cards held', formatNumber(s.collection?.held), 'provider slots in the collection')}
        ${tile('Cards shown', formatNumber(s.collection?.shown), 'current, not retired or expired')}
        ${tile('RFPs open', formatNumber(s.rfps?.open))}
        ${tile('Verifications pending', formatNumber(s.verification?.pending))}
        ${tile('Verifications running', formatNumber(s.verification?.running))}
        ${tile('Peers', formatNumber(s.peers))}
      </div>
      ${s.gossip !== undefined
        ? html`
          <h3>Gossip</h3>
          <div class="grid grid-2 tight">
            ${Object.entries(s.gossip).map(([topic, v]) => html`
              <div><p class="small muted gossip-topic">${topic}</p><${Facts} className="facts-inline" items=${Object.entries(v ?? {}).map(([k, x]) => [k, html`<${Counts} value=${x} />`])} /></div>`)}
          </div>`
        : null}
    <//>`
}

function Backends () {
  const res = useResource('/v1/backends', { events: ['contract'] })
  const rows = Array.isArray(res.data) ? res.data : []
  return html`
    <${Card} title="Backends" id="node-backends">
      <${ErrorAlert} error=${res.error} />
      ${res.loading
        ? html`<${Loading} />`
        : rows.length === 0
          ? html`<${Empty}>No backend configured: this node does not provide machines.</${Empty}>`
          : html`
            <div class="table-wrap">
              <table class="table table-zebra table-compact" id="backends-table">
                <thead><tr><th scope="col">Backend</th><th scope="col">Kind</th><th scope="col">Health</th><th scope="col">Capacity</th><th scope="col">In use</th><th scope="col">Regions</th></tr></thead>
                <tbody>
                  ${rows.map((b) => html`
                    <tr key=${b.name}>
                      <td>${b.name}</td>
                      <td>${b.kind}${b.capabilities?.tdx ? html` <span class="badge badge-info">TDX</span>` : null}</td>
                      <td>${b.ok ? html`<span class="badge badge-good">ok</span>` : html`<span class="badge badge-bad">down</span>`}${b.reason !== undefined ? html` <span class="small muted">${b.reason}</span>` : null}</td>
                      <td class="small">${b.capabilities !== undefined ? `${b.capabilities.maxCpu} vCPU · ${formatNumber(b.capabilities.maxMemoryMiB)} MiB · ${formatNumber(b.capabilities.maxDiskGiB)} GiB` : '—'}</td>
                      <td class="small">${b.used !== undefined ? `${b.used.instances} instance${b.used.instances === 1 ? '' : 's'} · ${b.used.cpus} vCPU · ${formatNumber(b.used.memMiB)} MiB · ${formatNumber(b.used.diskGiB)} GiB` : '—'}</td>
                      <td class="small">${b.capabilities?.regions?.join(', ') || '—'}</td>
                    </tr>`)}
                </tbody>
              </table>
            </div>`}
    <//>`
}

function Charts ({ samples }) {
  const series = useMemo(() => {
    const x = samples.map((s) => s.t)
    // Accepted messages per sample interval; a counter that went down means the node restarted.
    const accepted = samples.map((s, i) => {
      const prev = samples[i - 1]
      if (prev === undefined || s.accepted === null || prev.accepted === null) return null
      const d = s.accepted - prev.accepted
      return d >= 0 ? d : null
    })
    return { x, peers: samples.map((s) => s.peers), pending: samples.map((s) => s.pending), accepted, rss: samples.map((s) => s.rss) }
  }, [samples])
  const last = (arr) => arr.length > 0 ? arr[arr.length - 1] : null
  const chart = (title, y, format, color, fill, integer = true, metricName = '') => html`
    <div class="chart-card">
      <div class="chart-head"><span>${title}</span><strong>${last(y) === null ? '—' : format(last(y))}</strong></div>
      ${samples.length > 0 && y.every((v) => v === null) && metricName !== ''
        ? html`<p class="muted small chart-missing">The node does not export <code>${metricName}</code>.</p>`
        : html`<${TimeSeries} x=${series.x} y=${y} label=${title} format=${format} color=${color} fill=${fill} integer=${integer} />`}
    </div>`
  return html`
    <${Card} title="Last 10 minutes" id="node-charts">
      ${samples.length < 2
        ? html`<p class="muted small">Collecting: a point every 5 s from the node's metrics events (${samples.length} so far).</p>`
        : null}
      <div class="grid grid-2 charts">
        ${chart('Peers connected', series.peers, (v) => formatNumber(v), COLORS.accent, COLORS.accentFill)}
        ${chart('Verification queue (pending)', series.pending, (v) => formatNumber(v), '#8a5a00', 'rgba(138, 90, 0, 0.15)')}
        ${chart('Gossip accepted per 5 s', series.accepted, (v) => formatNumber(v), COLORS.good, 'rgba(46, 125, 79, 0.15)')}
        ${chart('Resident memory', series.rss, (v) => formatBytes(v), '#5b4fa8', 'rgba(91, 79, 168, 0.15)', false, 'process_resident_memory_bytes')}
      </div>
    <//>`
}

/** A counter by up to two labels: rows by the first label, one column per value of the second. */
function Pivot ({ snap, name, rows: rowLabel, cols: colLabel, title, caption }) {
  const grouped = groupBy(snap, name, colLabel !== undefined ? [rowLabel, colLabel] : [rowLabel])
  const rowKeys = [...new Set(grouped.map((g) => g.key[0]))]
  const colKeys = colLabel !== undefined ? [...new Set(grouped.map((g) => g.key[1]))] : ['count']
  const cell = (r, c) => grouped.find((g) => g.key[0] === r && (colLabel === undefined || g.key[1] === c))?.value
  return html`
    <div class="counter" data-metric=${name}>
      <h3 title=${name}>${title}</h3>
      ${grouped.length === 0
        ? html`<p class="muted small">none yet</p>`
        : html`
          <div class="table-wrap">
            <table class="table table-compact table-zebra">
              ${caption !== undefined ? html`<caption class="visually-hidden">${caption}</caption>` : null}
              <thead><tr><th scope="col">${rowLabel}</th>${colKeys.map((c) => html`<th scope="col" class="num">${colLabel !== undefined ? c : 'count'}</th>`)}</tr></thead>
              <tbody>
                ${rowKeys.map((r) => html`<tr><th scope="row">${r}</th>${colKeys.map((c) => html`<td class="num">${formatNumber(cell(r, c) ?? 0)}</td>`)}</tr>`)}
              </tbody>
            </table>
          </div>`}
    </div>`
}

function Counters ({ snap }) {
  if (snap === undefined) return html`<${Card} title="Counters"><${Loading} /><//>`
  const single = (label, name) => {
    const v = total(snap, name)
    return [label, v === null ? undefined : formatNumber(v)]
  }
  return html`
    <${Card} title="Counters since start" id="node-counters">
      <${Facts} className="facts-inline" items=${[
        single('Store writes flushed', 'cmesh_store_flushed_writes_total'),
        single('Verifications dropped', 'cmesh_verification_dropped_total'),
        single('Dials refused by back-off', 'cmesh_dial_backoff_refused')
      ]} />
      <div class="grid grid-2 counters">
        <${Pivot} snap=${snap} name="cmesh_gossip_verdicts_total" title="Gossip verdicts" rows="topic" cols="verdict" />
        <${Pivot} snap=${snap} name="cmesh_sync_sessions_total" title="Sync sessions" rows="outcome" cols="role" />
        <${Pivot} snap=${snap} name="cmesh_attest_sessions_total" title="Attest sessions" rows="outcome" cols="level" />
        <${Pivot} snap=${snap} name="cmesh_quote_verifications_total" title="Quote verifications" rows="code" cols="source" />
        <${Pivot} snap=${snap} name="cmesh_evidence_fetches_total" title="Evidence fetches" rows="outcome" cols="source" />
        <${Pivot} snap=${snap} name="cmesh_sync_records_total" title="Records pulled by sync" rows="outcome" />
      </div>
    <//>`
}

export function NodePage () {
  const status = useResource('/v1/status', { events: ['collection', 'verified', 'rfp', 'metrics'], delay: 1000 })
  const { latest, samples } = useMetrics()
  return html`
    <div class="page-head">
      <h1 tabindex="-1">Node</h1>
      <p class="muted">Identity, holdings and health of this node.</p>
    </div>
    <div class="grid grid-2">
      <${Status} status=${status} />
      <${Holdings} s=${status.data} />
    </div>
    <${Charts} samples=${samples} />
    <${Counters} snap=${latest} />
    <${Backends} />`
}
