/**
 * The trust graph drawn as SVG built from preact elements (no inline styles, so the page's CSP
 * holds): me in the centre, everyone else on a ring by vouch distance from me, those no vouch path
 * reaches on the outermost ring; vouch edges green, denounce edges red, arrows toward the subject.
 */
import { html, useMemo } from '/ui/vendor/htm-preact.mjs'
import { shortDid } from './format.js'

const SIZE = 640
const CENTRE = SIZE / 2
const NODE_R = 7
const ME_R = 11
/** Beyond this many identities the drawing is unreadable; the lists beside it carry the rest. */
const MAX_NODES = 120

/**
 * @param {{ me: string, statements: { kind: string, truster: string, subject: string }[] }} graph
 */
function layout (graph) {
  const { me } = graph
  const statements = graph.statements ?? []
  /** @type {Map<string, Set<string>>} */
  const vouches = new Map()
  const all = new Set([me])
  for (const s of statements) {
    all.add(s.truster)
    all.add(s.subject)
    if (s.kind === 'vouch') {
      if (!vouches.has(s.truster)) vouches.set(s.truster, new Set())
      vouches.get(s.truster).add(s.subject)
    }
  }
  // Breadth-first over vouches from me: a node's ring is its vouch distance.
  /** @type {Map<string, number>} */
  const dist = new Map([[me, 0]])
  let frontier = [me]
  while (frontier.length > 0) {
    const next = []
    for (const d of frontier) {
      for (const s of vouches.get(d) ?? []) {
        if (!dist.has(s)) { dist.set(s, dist.get(d) + 1); next.push(s) }
      }
    }
    frontier = next
  }
  const reachedMax = Math.max(0, ...dist.values())
  const outer = reachedMax + 1
  let nodes = [...all].map((did) => ({ did, ring: dist.get(did) ?? outer, reached: dist.has(did) }))
  nodes.sort((a, b) => a.ring - b.ring)
  const truncated = nodes.length > MAX_NODES ? nodes.length - MAX_NODES : 0
  nodes = nodes.slice(0, MAX_NODES)
  const rings = Math.max(1, ...nodes.map((n) => n.ring))
  const ringsDrawn = Math.max(0, ...nodes.map((n) => n.ring))
  const step = (CENTRE - 40) / rings

  /** @type {Map<string, { x: number, y: number, angle: number }>} */
  const pos = new Map([[me, { x: CENTRE, y: CENTRE, angle: 0 }]])
  // Ring by ring, ordered by the mean angle of whoever vouched for them, so edges cross less.
  const vouchersOf = new Map()
  for (const s of statements) {
    if (s.kind !== 'vouch') continue
    if (!vouchersOf.has(s.subject)) vouchersOf.set(s.subject, [])
    vouchersOf.get(s.subject).push(s.truster)
  }
  for (let ring = 1; ring <= rings; ring++) {
    const members = nodes.filter((n) => n.ring === ring)
    const keyed = members.map((n, i) => {
      const angles = (vouchersOf.get(n.did) ?? []).map((v) => pos.get(v)?.angle).filter((a) => a !== undefined)
      return { n, key: angles.length > 0 ? angles.reduce((a, b) => a + b, 0) / angles.length : i / Math.max(1, members.length) * 2 * Math.PI }
    }).sort((a, b) => a.key - b.key)
    const offset = ring * 0.6
    keyed.forEach(({ n }, i) => {
      const angle = offset + (i / keyed.length) * 2 * Math.PI
      const r = ring * step
      pos.set(n.did, { x: CENTRE + r * Math.cos(angle), y: CENTRE + r * Math.sin(angle), angle })
    })
  }
  const edges = statements.filter((s) => pos.has(s.truster) && pos.has(s.subject) && s.truster !== s.subject)
  return { nodes, pos, edges, rings, ringsDrawn, step, truncated, outer, reachedMax }
}

/** A line from a to b, shortened at both ends so it starts and ends at the circles' edges. */
function trimmed (a, b, ra, rb) {
  const dx = b.x - a.x
  const dy = b.y - a.y
  const len = Math.hypot(dx, dy) || 1
  return { x1: a.x + dx / len * ra, y1: a.y + dy / len * ra, x2: b.x - dx / len * (rb + 3), y2: b.y - dy / len * (rb + 3) }
}

/**
 * @param {{ graph: { me: string, statements: any[], denounced?: string[], direct?: string[], vouched?: string[] } }} props
 */
export function TrustGraph ({ graph }) {
  const g = useMemo(() => layout(graph), [graph])
  const denounced = new Set(graph.denounced ?? [])
  const vouched = new Set(graph.vouched ?? [])
  const labels = g.nodes.length <= 30
  const radius = (did) => (did === graph.me ? ME_R : NODE_R)
  return html`
    <figure class="trust-graph">
      <svg viewBox=${`0 0 ${SIZE} ${SIZE}`} role="img" aria-labelledby="trust-graph-caption" class="trust-svg">
        <defs>
          <marker id="arrow-vouch" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow-vouch" />
          </marker>
          <marker id="arrow-denounce" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow-denounce" />
          </marker>
        </defs>
        ${Array.from({ length: g.ringsDrawn }, (_, i) => html`
          <circle cx=${CENTRE} cy=${CENTRE} r=${(i + 1) * g.step} class=${i + 1 === g.outer ? 'ring ring-outer' : 'ring'} />`)}
        ${g.edges.map((e) => {
          const l = trimmed(g.pos.get(e.truster), g.pos.get(e.subject), radius(e.truster), radius(e.subject))
          const kind = e.kind === 'denounce' ? 'denounce' : 'vouch'
          return html`<line ...${l} class=${`edge edge-${kind}`} marker-end=${`url(#arrow-${kind})`}>
            <title>${`${shortDid(e.truster)} ${kind === 'vouch' ? 'vouches for' : 'denounces'} ${shortDid(e.subject)}`}</title>
          </line>`
        })}
        ${g.nodes.map((n) => {
          const p = g.pos.get(n.did)
          const me = n.did === graph.me
          const cls = ['node', me ? 'node-me' : '', denounced.has(n.did) ? 'node-denounced' : '', vouched.has(n.did) ? 'node-vouched' : '', !n.reached ? 'node-unreached' : ''].join(' ')
          return html`
            <g class=${cls}>
              <circle cx=${p.x} cy=${p.y} r=${radius(n.did)}>
                <title>${`${me ? 'me: ' : ''}${n.did}${denounced.has(n.did) ? ' (denounced)' : ''}${n.reached && !me ? ` — ${n.ring} vouch${n.ring === 1 ? '' : 'es'} from me` : ''}`}</title>
              </circle>
              ${labels || me
                ? html`<text x=${p.x} y=${p.y + radius(n.did) + 12} class="node-label">${me ? 'me' : shortDid(n.did)}</text>`
                : null}
            </g>`
        })}
      </svg>
      <figcaption id="trust-graph-caption" class="small muted">
        ${g.nodes.length === 1 ? 'No statement known yet: only this node. ' : ''}${g.nodes.length} identit${g.nodes.length === 1 ? 'y' : 'ies'} and ${g.edges.length} statement${g.edges.length === 1 ? '' : 's'}:
        rings are vouch distance from me${g.nodes.some((n) => !n.reached) ? '; the dashed outer ring holds those no vouch path reaches' : ''}.
        ${' '}<span class="legend-vouch">Green</span> = vouch, <span class="legend-denounce">red</span> = denounce.
        ${g.truncated > 0 ? ` ${g.truncated} more not drawn.` : ''}
      </figcaption>
    </figure>`
}
