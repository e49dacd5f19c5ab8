/**
 * The dashboard's files, served by the node itself from its local API address: the page and its
 * modules (src/node/dashboard/ui/, plain browser ES modules, no build step) and two vendored
 * libraries from node_modules (htm's preact build, uPlot). Every file gets a route of its own when
 * the node starts, so an unknown path is a 404, never a file lookup; nothing comes from a CDN.
 * The page runs under a Content-Security-Policy that allows scripts, styles and connections to this
 * origin only and no inline script or style.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, extname, join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ApiRoute } from './api.js'

export const DASHBOARD_CSP = [
  "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'", "object-src 'none'"
].join('; ')

/** Headers on every dashboard file: the policy, no framing, no referrer leaving the page. */
export const DASHBOARD_HEADERS: Record<string, string> = {
  'content-security-policy': DASHBOARD_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
}

/** The project's root: the nearest directory above this module holding our package.json (works from src/ under tsx and from dist/). */
function projectRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'compute-mesh') return dir
    const up = dirname(dir)
    if (up === dir) throw new Error('the compute-mesh package root was not found above the dashboard module')
    dir = up
  }
}

export function dashboardUiDir (): string {
  return join(projectRoot(), 'src', 'node', 'dashboard', 'ui')
}

/** URL path → file on disk: the UI directory's files under /ui/ (index.html at /), and the vendored modules. */
export function dashboardFiles (uiDir = dashboardUiDir()): Map<string, string> {
  const files = new Map<string, string>()
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) walk(path)
      else if (entry.isFile() && CONTENT_TYPES[extname(entry.name)] !== undefined) {
        files.set(`/ui/${relative(uiDir, path).split(sep).join('/')}`, path)
      }
    }
  }
  if (existsSync(uiDir)) walk(uiDir)
  const index = files.get('/ui/index.html')
  if (index !== undefined) files.set('/', index)
  const require = createRequire(import.meta.url)
  // htm's exports map has no entry for this file (its "./" folder mapping is gone from Node): find it beside the package's main.
  files.set('/ui/vendor/htm-preact.mjs', join(dirname(require.resolve('htm')), '..', 'preact', 'standalone.module.js'))
  files.set('/ui/vendor/uplot.mjs', require.resolve('uplot/dist/uPlot.esm.js'))
  files.set('/ui/vendor/uplot.css', require.resolve('uplot/dist/uPlot.min.css'))
  return files
}

/** One GET route per file; the bytes are read once, on first request. */
export function dashboardAssetRoutes (files: Map<string, string> = dashboardFiles()): ApiRoute[] {
  return [...files].map(([path, file]) => {
    let text: string | undefined
    return {
      method: 'GET',
      path,
      handle: () => {
        text ??= readFileSync(file, 'utf8')
        return { text, contentType: CONTENT_TYPES[extname(file)] ?? 'application/octet-stream', headers: DASHBOARD_HEADERS }
      }
    } satisfies ApiRoute
  })
}
