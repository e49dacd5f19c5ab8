/**
 * The dashboard's shell: header (which node, whether it answers), the page nav, the banners for a
 * refused session or an unreachable node, and a hash router (#/market, #/requests/<id>, …) so a
 * page and its selection survive a reload and work with the back button.
 */
import { html, render, useEffect, useRef } from '/ui/vendor/htm-preact.mjs'
import { startEvents } from './api.js'
import { useConnection, useHash } from './hooks.js'
import { startMetricsHistory } from './metrics.js'
import { useResource } from './resource.js'
import { shortDid, shortId } from './format.js'
import { MarketPage } from './pages/market.js'
import { RequestsPage } from './pages/requests.js'
import { ContractsPage } from './pages/contracts.js'
import { TrustPage } from './pages/trust.js'
import { NodePage } from './pages/node.js'

const PAGES = [
  { id: 'market', title: 'Market', Page: MarketPage },
  { id: 'requests', title: 'Requests', Page: RequestsPage },
  { id: 'contracts', title: 'Contracts', Page: ContractsPage },
  { id: 'trust', title: 'Trust', Page: TrustPage },
  { id: 'node', title: 'Node', Page: NodePage }
]

/** "#/requests/abc" → the requests page with param "abc"; anything unknown is the market. */
function route (hash) {
  const m = /^#\/([a-z]+)(?:\/(.*))?$/.exec(hash)
  const page = PAGES.find((p) => p.id === m?.[1]) ?? PAGES[0]
  let param
  if (m?.[2] !== undefined && m[2] !== '') {
    try { param = decodeURIComponent(m[2]) } catch { param = undefined }
  }
  return { page, param }
}

function ConnectionPill ({ reach, live }) {
  const [text, tone, title] =
    reach === 'unauthorized'
      ? ['Signed out', 'bad', 'The node refused this browser\'s session']
      : reach === 'offline'
        ? ['Offline', 'bad', `No answer from ${location.origin}; retrying every 5 s`]
        : reach === 'connecting'
          ? ['Connecting…', 'neutral', 'Waiting for the node\'s first answer']
          : live
            ? ['Live', 'good', 'Following the node\'s event stream']
            : ['Reconnecting…', 'warn', 'The node answers; the event stream is reconnecting']
  return html`<span class=${`pill pill-${tone}`} role="status" title=${title}><span class="dot" aria-hidden="true"></span>${text}</span>`
}

function Header ({ current, status, connection }) {
  return html`
    <header class="app-header">
      <div class="brand">
        <span class="brand-mark" aria-hidden="true"></span>
        <span class="brand-name">compute-mesh</span>
      </div>
      <div class="node-id">
        ${status !== undefined
          ? html`
            <span class="node-did" title=${status.did}>${shortDid(status.did)}</span>
            <span class="muted node-peer" title=${`peer id ${status.peerId}`}>${shortId(status.peerId, 8, 6)}</span>
            ${status.network !== undefined ? html`<span class="badge badge-neutral" title="network">${status.network}</span>` : null}`
          : html`<span class="muted">node</span>`}
      </div>
      <${ConnectionPill} reach=${connection.reach} live=${connection.live} />
      <nav aria-label="Pages" class="app-nav">
        <ul>
          ${PAGES.map((p) => html`
            <li><a href=${`#/${p.id}`} aria-current=${p.id === current ? 'page' : undefined}>${p.title}</a></li>`)}
        </ul>
      </nav>
    </header>`
}

function Banners ({ reach }) {
  if (reach === 'unauthorized') {
    return html`
      <div id="session-banner" class="banner banner-error" role="alert">
        Your session has expired or is not valid. Run <code>cmesh dashboard</code> on the node's machine for a new login link.
      </div>`
  }
  if (reach === 'offline') {
    return html`
      <div id="offline-banner" class="banner banner-warn" role="alert">
        The node is not reachable at ${location.origin}. Is <code>cmesh start</code> running?${' '}<span class="banner-note">Retrying every 5 s.</span>
      </div>`
  }
  return null
}

function App () {
  const hash = useHash()
  const connection = useConnection()
  const { page, param } = route(hash)
  const status = useResource('/v1/status')
  const main = useRef(null)
  const lastPage = useRef(page.id)

  useEffect(() => {
    document.title = `${page.title} · compute-mesh`
    // Moving between pages puts keyboard and screen-reader focus at the new page's heading;
    // selecting within a page (the param) leaves focus where the user is.
    if (lastPage.current !== page.id) {
      lastPage.current = page.id
      main.current?.querySelector('h1')?.focus()
    }
  }, [page.id])

  const { Page } = page
  return html`
    <a class="skip-link" href="#main" onClick=${(e) => { e.preventDefault(); main.current?.querySelector('h1')?.focus() }}>Skip to content</a>
    <${Header} current=${page.id} status=${status.data} connection=${connection} />
    <${Banners} reach=${connection.reach} />
    <main id="main" data-page=${page.id} ref=${main}>
      <${Page} key=${page.id} param=${param} status=${status.data} />
    </main>`
}

startEvents()
startMetricsHistory()
render(html`<${App} />`, document.getElementById('app'))
