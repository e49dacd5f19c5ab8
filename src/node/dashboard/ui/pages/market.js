/**
 * Market: who offers what, at which price and at which attestation level, the level verified from
 * evidence next to the level claimed. Filters and the capacity/committee questions are query
 * parameters of GET /v1/market; the data refetches when cards arrive or verifications finish.
 */
import { html, useMemo, useState } from '/ui/vendor/htm-preact.mjs'
import { useResource } from '../resource.js'
import { useDebounced } from '../hooks.js'
import { BarChart, COLORS } from '../chart.js'
import { Card, Did, Empty, ErrorAlert, Facts, LevelBadge, Loading, SimulatedBadge } from '../components.js'
import { LEVELS, LEVEL_HELP, LEVEL_SHORT, feeStats, formatNumber, formatTime, formatWei, groupDigits, relativeTime } from '../format.js'

/** Rows rendered at first: the table is cheapest first, and a large collection holds thousands. */
const PAGE_ROWS = 200

/** @param {Record<string, string>} f */
function marketPath (f) {
  const q = new URLSearchParams()
  q.set('floor', f.floor)
  for (const key of ['scheme', 'region', 'burst', 'committee', 'threshold']) {
    const v = f[key].trim()
    if (v !== '') q.set(key, v)
  }
  return `/v1/market?${q}`
}

function Filters ({ form, set }) {
  return html`
    <form class="filters" role="search" aria-label="Market filters" onSubmit=${(e) => e.preventDefault()}>
      <div class="field">
        <label for="market-floor">Verified floor</label>
        <select id="market-floor" name="floor" value=${form.floor} onChange=${(e) => set('floor', e.currentTarget.value)}>
          ${LEVELS.map((l) => html`<option value=${l} title=${LEVEL_HELP[l]}>${l}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="market-scheme">Scheme</label>
        <input id="market-scheme" name="scheme" type="text" placeholder="any, e.g. vm.ssh" value=${form.scheme}
          onInput=${(e) => set('scheme', e.currentTarget.value)} autocomplete="off" spellcheck=${false} />
      </div>
      <div class="field">
        <label for="market-region">Region</label>
        <input id="market-region" name="region" type="text" placeholder="any, e.g. eu-west" value=${form.region}
          onInput=${(e) => set('region', e.currentTarget.value)} autocomplete="off" spellcheck=${false} />
      </div>
    </form>`
}

function LadderMix ({ levels }) {
  const rows = LEVELS.map((l) => levels?.find((x) => x.level === l) ?? { level: l, claimed: 0, verified: 0 })
  const summary = rows.map((r) => `${r.level}: ${r.claimed} claimed, ${r.verified} verified`).join('; ')
  return html`
    <${Card} title="Ladder mix" id="ladder-mix">
      <${BarChart}
        labels=${rows.map((r) => LEVEL_SHORT[r.level] ?? r.level)}
        series=${[
          { label: 'Claimed', values: rows.map((r) => r.claimed), stroke: COLORS.muted, fill: COLORS.mutedFill },
          { label: 'Verified', values: rows.map((r) => r.verified), stroke: COLORS.accent, fill: 'rgba(47, 111, 176, 0.75)' }
        ]}
        ariaLabel=${`Providers per attestation level, claimed and verified. ${summary}`} />
      <ul class="chart-legend" aria-hidden="true">
        <li><span class="swatch swatch-claimed"></span>Claimed</li>
        <li><span class="swatch swatch-verified"></span>Verified</li>
      </ul>
      <table class="table table-compact ladder-table">
        <caption class="visually-hidden">Providers per level</caption>
        <thead><tr><th scope="col">Level</th>${rows.map((r) => html`<th scope="col" title=${r.level}>${LEVEL_SHORT[r.level]}</th>`)}</tr></thead>
        <tbody>
          <tr><th scope="row">Claimed</th>${rows.map((r) => html`<td class="num">${formatNumber(r.claimed)}</td>`)}</tr>
          <tr><th scope="row">Verified</th>${rows.map((r) => html`<td class="num">${formatNumber(r.verified)}</td>`)}</tr>
        </tbody>
      </table>
    <//>`
}

function FeesByLevel ({ feesByLevel }) {
  const stats = useMemo(() => LEVELS.map((level) => ({
    level,
    stats: feeStats(feesByLevel?.find((f) => f.level === level)?.fees)
  })), [feesByLevel])
  return html`
    <${Card} title="Fee per partial, by verified level" id="fees-by-level">
      <table class="table table-compact">
        <thead>
          <tr><th scope="col">Verified level</th><th scope="col" class="num">Providers</th><th scope="col" class="num">Min</th><th scope="col" class="num">Median</th><th scope="col" class="num">Max</th></tr>
        </thead>
        <tbody>
          ${stats.map(({ level, stats: s }) => html`
            <tr>
              <th scope="row"><${LevelBadge} level=${level} /></th>
              <td class="num">${s?.count ?? 0}</td>
              <td class="num mono">${s !== undefined ? groupDigits(s.min) : '—'}</td>
              <td class="num mono">${s !== undefined ? groupDigits(s.median) : '—'}</td>
              <td class="num mono">${s !== undefined ? groupDigits(s.max) : '—'}</td>
            </tr>`)}
        </tbody>
      </table>
      <p class="muted small">Amounts in wei.</p>
    <//>`
}

function CapacityCard ({ form, set, capacity }) {
  return html`
    <${Card} title="Capacity for a burst" id="capacity">
      <div class="question">
        <div class="field">
          <label for="market-burst">Burst (requests/s)</label>
          <input id="market-burst" name="burst" type="number" min="1" step="1" inputmode="numeric" value=${form.burst}
            onInput=${(e) => set('burst', e.currentTarget.value)} />
        </div>
        ${capacity === undefined
          ? html`<p class="report muted small">Enter a burst to see whether the eligible providers can carry it.</p>`
          : html`
            <p class="report" id="capacity-report">
              ${capacity.sufficient
                ? html`<span class="badge badge-good">sufficient</span>`
                : html`<span class="badge badge-bad">shortfall</span>`}
              ${' '}${formatNumber(capacity.capacityPerSecond, 1)}/s of capacity for ${formatNumber(capacity.burstPerSecond)}/s${
                capacity.sufficient ? '' : html`: short by <strong>${formatNumber(capacity.shortfall, 1)}/s</strong>`}.
            </p>`}
      </div>
    <//>`
}

function CommitteeCard ({ form, set, committee }) {
  return html`
    <${Card} title="Committee" id="committee">
      <div class="question">
        <div class="field">
          <label for="market-committee">Committee size</label>
          <input id="market-committee" name="committee" type="number" min="1" step="1" inputmode="numeric" value=${form.committee}
            onInput=${(e) => set('committee', e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="market-threshold">Threshold</label>
          <input id="market-threshold" name="threshold" type="number" min="1" step="1" inputmode="numeric" value=${form.threshold}
            onInput=${(e) => set('threshold', e.currentTarget.value)} />
        </div>
        ${committee === undefined
          ? html`<p class="report muted small">Enter a size and threshold to see who could form it and at what cost.</p>`
          : html`
            <p class="report" id="committee-report">
              ${committee.missing > 0
                ? html`<span class="badge badge-bad">${committee.missing} missing</span>`
                : html`<span class="badge badge-good">can be formed</span>`}
              ${' '}${committee.threshold}-of-${committee.committeeSize}, ${formatNumber(committee.eligible)} eligible.
            </p>`}
      </div>
      ${committee !== undefined
        ? html`
          <${Facts} className="facts-inline" items=${[
            ['Mean fee', committee.meanFeeWei !== undefined ? html`<span class="mono">${formatWei(committee.meanFeeWei)}</span>` : undefined],
            ['Forecast', committee.forecastWei !== undefined ? html`<span class="mono">${formatWei(committee.forecastWei)}</span>` : undefined]
          ]} />
          ${committee.cheapest?.length > 0
            ? html`<details class="cheapest"><summary>Cheapest ${committee.cheapest.length}</summary>
                <ol class="did-list">${committee.cheapest.map((d) => html`<li><${Did} did=${d} /></li>`)}</ol></details>`
            : null}`
        : null}
    <//>`
}

function Backends ({ backends }) {
  if (!Array.isArray(backends) || backends.length === 0) return html`<span class="muted">—</span>`
  return html`<ul class="inline-list">${backends.map((b) => html`
    <li title=${`${b.kind}: up to ${b.maxCpu} vCPU, ${b.maxMemoryMiB} MiB memory, ${b.maxDiskGiB} GiB disk${b.regions?.length ? `, regions ${b.regions.join(', ')}` : ''}`}>
      ${b.name}<span class="muted"> (${b.kind})</span>${b.tdx ? html` <span class="badge badge-info">TDX</span>` : null}
    </li>`)}</ul>`
}

function ProviderRow ({ p, overClaimed, simulated }) {
  return html`
    <tr data-provider=${p.providerId} class=${overClaimed ? 'row-overclaim' : ''}>
      <td><${Did} did=${p.providerId} /></td>
      <td>
        <${LevelBadge} level=${p.claimed} kind="claimed" />
      </td>
      <td>
        <${LevelBadge} level=${p.verified} kind="verified" simulated=${simulated} />
        ${simulated ? html` <${SimulatedBadge} />` : null}
        ${overClaimed ? html` <span class="badge badge-bad over-claim" title="Claims a higher level than its evidence proves">over-claim</span>` : null}
        ${p.code !== undefined ? html`<div class="small muted" title=${p.reason ?? ''}><code>${p.code}</code>${p.reason !== undefined ? ` — ${p.reason}` : ''}</div>` : null}
      </td>
      <td class="num mono">${groupDigits(p.feePerPartialWei)}</td>
      <td class="num">${formatNumber(p.capacityPerSecond, 1)}</td>
      <td>${p.regions?.length ? p.regions.join(', ') : html`<span class="muted">any</span>`}</td>
      <td>${p.schemes?.length ? p.schemes.join(', ') : html`<span class="muted">—</span>`}</td>
      <td><${Backends} backends=${p.backends} /></td>
      <td title=${formatTime(p.expiresAtUnixSecs)}>${relativeTime(p.expiresAtUnixSecs)}</td>
    </tr>`
}

function ProviderTable ({ data }) {
  const [limit, setLimit] = useState(PAGE_ROWS)
  const overClaims = useMemo(() => new Set(data.overClaims ?? []), [data.overClaims])
  const simulated = useMemo(() => new Set(data.simulated ?? []), [data.simulated])
  const providers = data.providers ?? []
  const shown = providers.slice(0, limit)
  return html`
    <${Card} title=${`Providers (${formatNumber(providers.length)} eligible)`} id="providers">
      ${providers.length === 0
        ? html`<${Empty}>No provider is eligible under this filter.</${Empty}>`
        : html`
          <div class="table-wrap">
            <table id="market-table" class="table table-zebra">
              <thead>
                <tr>
                  <th scope="col">Provider</th>
                  <th scope="col">Claimed</th>
                  <th scope="col">Verified</th>
                  <th scope="col" class="num">Fee / partial (wei)</th>
                  <th scope="col" class="num">Capacity/s</th>
                  <th scope="col">Regions</th>
                  <th scope="col">Schemes</th>
                  <th scope="col">Backends</th>
                  <th scope="col">Card expires</th>
                </tr>
              </thead>
              <tbody>
                ${shown.map((p) => html`<${ProviderRow} key=${p.providerId} p=${p}
                  overClaimed=${overClaims.has(p.providerId)}
                  simulated=${p.simulated === true || simulated.has(p.providerId)} />`)}
              </tbody>
            </table>
          </div>
          ${providers.length > limit
            ? html`<p class="table-more">
                Showing the ${formatNumber(limit)} cheapest of ${formatNumber(providers.length)}.
                <button type="button" class="btn" onClick=${() => setLimit(limit + PAGE_ROWS)}>Show ${Math.min(PAGE_ROWS, providers.length - limit)} more</button>
              </p>`
            : null}`}
    <//>`
}

export function MarketPage () {
  const [form, setForm] = useState({ floor: 'Software', scheme: '', region: '', burst: '', committee: '', threshold: '' })
  const set = (key, value) => setForm((f) => ({ ...f, [key]: value }))
  const path = useDebounced(marketPath(form), 350)
  const market = useResource(path, { events: ['collection', 'verified'], delay: 1000, keepPrevious: true })
  const data = market.data

  return html`
    <div class="page-head">
      <h1 tabindex="-1">Market</h1>
      ${data !== undefined
        ? html`<p class="muted">${formatNumber(data.shown)} card${data.shown === 1 ? '' : 's'} shown · as of ${formatTime(data.at)}${market.refreshing || market.stale ? ' · updating…' : ''}</p>`
        : null}
    </div>
    <${Filters} form=${form} set=${set} />
    <${ErrorAlert} error=${market.error} id="market-error" />
    ${data?.evidenceUnchecked
      ? html`<div class="notice notice-warn">Evidence has not been checked for every card yet: verified levels may still rise as verification runs.</div>`
      : null}
    ${data?.simulated?.length > 0
      ? html`<div class="notice notice-warn">${data.simulated.length} provider${data.simulated.length === 1 ? '\'s' : 's\''} verified level rests on the TEST-ONLY simulated root: no real TDX guarantee.</div>`
      : null}
    ${data?.overClaims?.length > 0
      ? html`<div class="notice notice-bad">${data.overClaims.length} provider${data.overClaims.length === 1 ? ' claims' : 's claim'} a higher level than its evidence proves (highlighted below).</div>`
      : null}
    ${data !== undefined
      ? html`
        <div class="grid grid-2">
          <${LadderMix} levels=${data.levels} />
          <${FeesByLevel} feesByLevel=${data.feesByLevel} />
        </div>`
      : null}
    <div class="grid grid-2">
      <${CapacityCard} form=${form} set=${set} capacity=${data?.capacity} />
      <${CommitteeCard} form=${form} set=${set} committee=${data?.committee} />
    </div>
    ${data !== undefined
      ? html`<${ProviderTable} data=${data} />`
      : market.error === undefined ? html`<${Loading} what="Loading the market" />` : null}`
}
