/**
 * uPlot wrapped for preact: uPlot is imperative, so each chart is created in an effect, fed with
 * setData when only the numbers change, resized with its container, and destroyed on unmount.
 * Canvas is opaque to assistive technology: callers give an aria-label and show the figures as
 * text next to the chart.
 */
import { html, useEffect, useRef } from '/ui/vendor/htm-preact.mjs'
import uPlot from '/ui/vendor/uplot.mjs'

/** The stylesheet's palette, repeated here because a canvas cannot read CSS classes. */
export const COLORS = {
  accent: '#2f6fb0',
  accentFill: 'rgba(47, 111, 176, 0.18)',
  muted: '#9aa5b1',
  mutedFill: 'rgba(154, 165, 177, 0.55)',
  good: '#2e7d4f',
  axis: '#5b6572',
  grid: '#e6e9ed'
}

/** Tick steps for counts: no "0.5 peers". */
const INTEGER_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6, 1e7, 1e8, 1e9]

const AXIS = { stroke: COLORS.axis, grid: { stroke: COLORS.grid, width: 1 }, ticks: { stroke: COLORS.grid, width: 1 } }

/**
 * Creates the plot once per `shape` (a string naming the structure: series and labels), and
 * otherwise only pushes new data.
 * @param {() => object} makeOptions  @param {any[]} data  @param {string} shape  @param {number} height
 */
function usePlot (makeOptions, data, shape, height) {
  const box = useRef(null)
  const plot = useRef(null)

  useEffect(() => {
    const el = box.current
    if (el === null) return
    const width = Math.max(160, el.clientWidth)
    const u = new uPlot({ ...makeOptions(), width, height }, data, el)
    plot.current = u
    let frame = 0
    // Resizing inside the observer's callback would change the layout it is observing (a
    // "ResizeObserver loop" error): resize on the next frame instead.
    const resize = new ResizeObserver(() => {
      cancelAnimationFrame(frame)
      frame = requestAnimationFrame(() => {
        const w = Math.max(160, el.clientWidth)
        if (w !== u.width) u.setSize({ width: w, height })
      })
    })
    resize.observe(el)
    return () => {
      cancelAnimationFrame(frame)
      resize.disconnect()
      u.destroy()
      plot.current = null
    }
  }, [shape, height])

  useEffect(() => {
    // The creating effect above already used this data on its first run; later runs update in place.
    const u = plot.current
    if (u !== null && u.data !== data) u.setData(data)
  }, [data])

  return box
}

/**
 * Grouped bars over categories: one bar per series in each category.
 * @param {{ labels: string[], series: { label: string, values: number[], stroke: string, fill: string }[], height?: number, ariaLabel: string }} props
 */
export function BarChart ({ labels, series, height = 170, ariaLabel }) {
  const data = [labels.map((_, i) => i), ...series.map((s) => s.values)]
  const shape = JSON.stringify([labels, series.map((s) => [s.label, s.stroke])])
  const n = series.length
  const box = usePlot(() => ({
    scales: {
      x: { time: false, range: [-0.6, labels.length - 0.4] },
      y: { range: (_u, _min, max) => [0, max > 0 ? Math.ceil(max * 1.15) : 1] }
    },
    axes: [
      {
        ...AXIS,
        grid: { show: false },
        splits: () => labels.map((_, i) => i),
        values: (_u, splits) => splits.map((v) => labels[v] ?? '')
      },
      { ...AXIS, size: 44, incrs: INTEGER_INCRS, values: (_u, splits) => splits.map((v) => String(v)) }
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.stroke,
        fill: s.fill,
        width: 1,
        points: { show: false },
        // Side by side: the first series left of the tick, the second right of it.
        paths: uPlot.paths.bars({ size: [n > 1 ? 0.36 : 0.6, 64], align: n === 1 ? 0 : i === 0 ? -1 : 1 })
      }))
    ],
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    // The caller draws a plain HTML legend: uPlot's would print the x value as a number.
    legend: { show: false }
  }), data, shape, height)
  return html`<div class="chart chart-bars" ref=${box} role="img" aria-label=${ariaLabel}></div>`
}

/**
 * One time series (x in unix seconds) over the last `windowSecs`; null values leave gaps.
 * @param {{ x: number[], y: (number | null)[], label: string, format?: (v: number) => string, integer?: boolean, windowSecs?: number, height?: number, color?: string, fill?: string }} props
 */
export function TimeSeries ({ x, y, label, format = (v) => String(v), integer = false, windowSecs = 600, height = 130, color = COLORS.accent, fill = COLORS.accentFill }) {
  const data = [x, y]
  const box = usePlot(() => ({
    scales: {
      // A fixed window ending at the newest sample: minute ticks from the first point on, not milliseconds.
      x: { time: true, range: (_u, _min, max) => { const end = max ?? Date.now() / 1000; return [end - windowSecs, end] } },
      y: { range: (_u, min, max) => [Math.min(0, min ?? 0), max !== null && max > 0 ? max * 1.15 : 1] }
    },
    axes: [
      { ...AXIS, space: 60 },
      { ...AXIS, size: 64, ...(integer ? { incrs: INTEGER_INCRS } : {}), values: (_u, splits) => splits.map((v) => format(v)) }
    ],
    series: [
      {},
      { label, stroke: color, fill, width: 1.5, points: { show: false }, spanGaps: false, value: (_u, v) => (v === null || v === undefined ? '—' : format(v)) }
    ],
    cursor: { drag: { x: false, y: false } },
    legend: { show: false }
  }), data, `${label}|${color}|${integer}|${windowSecs}`, height)
  return html`<div class="chart chart-time" ref=${box} role="img" aria-label=${`${label}, last ${x.length} samples`}></div>`
}
