// The loss curve as a self-contained SVG document, drawn by hand: axes with "nice" ticks,
// labels, a title, one polyline per series (broken where a value is not finite) and a legend.

/** One curve of the chart. */
export interface ChartSeries {
  /** Legend text. */
  name: string;
  /** Points `[x, y]` in increasing x; non-finite y values leave a gap. */
  points: readonly (readonly [number, number])[];
  /** Stroke colour (any SVG colour). */
  color: string;
  /** Draw a dot on every point (for sparse series such as evaluations). */
  markers?: boolean;
}

/** Size and labels of the chart. */
export interface ChartOptions {
  /** Title above the plot. */
  title?: string;
  /** Label under the x axis. */
  xLabel?: string;
  /** Label beside the y axis. */
  yLabel?: string;
  /** Pixel width (default 720). */
  width?: number;
  /** Pixel height (default 420). */
  height?: number;
}

/** Escapes text for use in XML character data and attribute values. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/**
 * About `target` evenly spaced round tick values (steps of 1, 2 or 5 times a power of ten)
 * covering [lo, hi]. Returns the ticks and the range they span.
 */
export function niceTicks(lo: number, hi: number, target = 5): { ticks: number[]; min: number; max: number; step: number } {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) throw new RangeError(`niceTicks: bounds must be finite, got ${lo}, ${hi}`);
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw * 0.999) ?? 10 * power;
  const first = Math.floor(lo / step);
  const last = Math.ceil(hi / step);
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  const ticks: number[] = [];
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toFixed(decimals)));
  return { ticks, min: ticks[0]!, max: ticks[ticks.length - 1]!, step };
}

function formatTick(value: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return value.toFixed(Math.min(decimals, 10));
}

function coord(v: number): string {
  return String(Math.round(v * 100) / 100);
}

/** A complete SVG document (with XML declaration) plotting `series`. */
export function lineChartSvg(series: readonly ChartSeries[], options: ChartOptions = {}): string {
  const width = options.width ?? 720;
  const height = options.height ?? 420;
  const margin = { left: 72, right: 24, top: options.title ? 44 : 20, bottom: 56 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const finite = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  const xs = finite.map(([x]) => x);
  const ys = finite.map(([, y]) => y);
  const xAxis = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1, 6);
  const yAxis = niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, 5);
  const px = (x: number) => margin.left + ((x - xAxis.min) / (xAxis.max - xAxis.min)) * plotW;
  const py = (y: number) => margin.top + plotH - ((y - yAxis.min) / (yAxis.max - yAxis.min)) * plotH;

  const out: string[] = [];
  out.push('<?xml version="1.0" encoding="UTF-8"?>');
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
    'font-family="sans-serif" font-size="12">');
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`);
  if (options.title) out.push(`<text x="${coord(width / 2)}" y="24" text-anchor="middle" font-size="15">${escapeXml(options.title)}</text>`);
  // Grid lines and tick labels.
  out.push('<g stroke="#e4e4e4" stroke-width="1">');
  for (const t of yAxis.ticks) out.push(`<line x1="${margin.left}" y1="${coord(py(t))}" x2="${margin.left + plotW}" y2="${coord(py(t))}"/>`);
  for (const t of xAxis.ticks) out.push(`<line x1="${coord(px(t))}" y1="${margin.top}" x2="${coord(px(t))}" y2="${margin.top + plotH}"/>`);
  out.push('</g>');
  out.push('<g fill="#333">');
  for (const t of yAxis.ticks) {
    out.push(`<text x="${margin.left - 8}" y="${coord(py(t) + 4)}" text-anchor="end">${formatTick(t, yAxis.step)}</text>`);
  }
  for (const t of xAxis.ticks) {
    out.push(`<text x="${coord(px(t))}" y="${margin.top + plotH + 18}" text-anchor="middle">${formatTick(t, xAxis.step)}</text>`);
  }
  out.push('</g>');
  // Axes.
  out.push(`<g stroke="#333" stroke-width="1.2">`);
  out.push(`<line x1="${margin.left}" y1="${margin.top + plotH}" x2="${margin.left + plotW}" y2="${margin.top + plotH}"/>`);
  out.push(`<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}"/>`);
  for (const t of yAxis.ticks) out.push(`<line x1="${margin.left - 4}" y1="${coord(py(t))}" x2="${margin.left}" y2="${coord(py(t))}"/>`);
  for (const t of xAxis.ticks) out.push(`<line x1="${coord(px(t))}" y1="${margin.top + plotH}" x2="${coord(px(t))}" y2="${margin.top + plotH + 4}"/>`);
  out.push('</g>');
  if (options.xLabel) {
    out.push(`<text x="${coord(margin.left + plotW / 2)}" y="${height - 14}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  }
  if (options.yLabel) {
    const cy = coord(margin.top + plotH / 2);
    out.push(`<text x="18" y="${cy}" text-anchor="middle" transform="rotate(-90 18 ${cy})">${escapeXml(options.yLabel)}</text>`);
  }
  // Curves: one polyline per finite run of points.
  for (const s of series) {
    const runs: string[][] = [[]];
    for (const [x, y] of s.points) {
      if (Number.isFinite(x) && Number.isFinite(y)) runs[runs.length - 1]!.push(`${coord(px(x))},${coord(py(y))}`);
      else if (runs[runs.length - 1]!.length) runs.push([]);
    }
    const color = escapeXml(s.color);
    for (const run of runs) {
      if (run.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${run.join(' ')}"/>`);
      if (s.markers || run.length === 1) {
        for (const p of run) {
          const [cx, cy] = p.split(',');
          out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${color}"/>`);
        }
      }
    }
  }
  // Legend, top right inside the plot, on a light box so curves behind it stay readable.
  if (series.length) {
    const boxX = margin.left + plotW - 158;
    out.push(`<rect x="${boxX}" y="${margin.top + 2}" width="152" height="${series.length * 18 + 8}" fill="white" fill-opacity="0.85" stroke="#cccccc"/>`);
  }
  series.forEach((s, i) => {
    const y = margin.top + 14 + i * 18;
    const x = margin.left + plotW - 150;
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 24}" y2="${y - 4}" stroke="${escapeXml(s.color)}" stroke-width="2"/>`);
    out.push(`<text x="${x + 30}" y="${y}">${escapeXml(s.name)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The training chart: loss per step, and held-out loss at each evaluation when there are any. */
export function lossCurveSvg(
  steps: readonly { step: number; loss: number }[],
  evals: readonly { step: number; loss: number }[] = [],
  title = 'Training loss',
): string {
  const series: ChartSeries[] = [{ name: 'train loss', points: steps.map((r) => [r.step, r.loss] as const), color: '#1f77b4' }];
  if (evals.length) series.push({ name: 'held-out loss', points: evals.map((r) => [r.step, r.loss] as const), color: '#d62728', markers: true });
  return lineChartSvg(series, { title, xLabel: 'step', yLabel: 'loss' });
}
