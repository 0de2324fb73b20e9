// The study's plots as plain SVG text (no dependency): grouped horizontal bars with error bars
// (accuracy by method, adapter vs merged INT4 model) and line curves over training steps
// (gradient norms), on a logarithmic axis when the values span more than a factor of 20.

const FONT = 'text{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:12px;fill:#24292f}' +
  '.title{font-size:15px;font-weight:600}.axis{font-size:11px;fill:#57606a}.tick{font-size:10px;fill:#57606a}' +
  '.grid{stroke:#d0d7de;stroke-width:1}.ref{stroke:#8c959f;stroke-width:1;stroke-dasharray:4 3}.value{font-size:11px}';

/** Distinct colours, one per series, readable on white. */
export const SERIES_COLOURS = ['#1f6feb', '#bc4c00', '#2da44e', '#8250df', '#cf222e', '#0a7c86', '#9a6700', '#57606a'];

/** Escapes text for SVG content and attributes. */
export function escapeXml(/** @type {unknown} */ text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step (1, 2 or 5 times a power of ten) near `rough`. */
export function niceStep(/** @type {number} */ rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  const m = rough / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

/** Short text for a tick value. */
function tickText(/** @type {number} */ v) {
  if (v === 0) return '0';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return Number(v.toPrecision(3)).toString();
}

function svgOpen(/** @type {number} */ width, /** @type {number} */ height, /** @type {string} */ title, /** @type {string} */ axis) {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}">`,
    `<style>${FONT}</style>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" class="title">${escapeXml(title)}</text>`,
    `<text x="10" y="40" class="axis">${escapeXml(axis)}</text>`,
  ];
}

/**
 * Grouped horizontal bars with error bars: one group per label, one bar per series (e.g. the
 * adapter model and its merged INT4 model), a bar's length the mean and its whisker ± the
 * standard deviation; dashed vertical reference lines (e.g. chance, the base model).
 *
 * @param {object} chart
 * @param {string} chart.title
 * @param {string} chart.axis
 * @param {string[]} chart.series names of the bars within a group
 * @param {{ label: string, bars: ({ mean: number, std: number } | null)[] }[]} chart.groups
 * @param {{ value: number, label: string }[]} [chart.references]
 * @param {(v: number) => string} [chart.format] how values are written
 * @returns {string}
 */
export function barChart({ title, axis, series, groups, references = [], format = tickText }) {
  const width = 820;
  const left = 230;
  const right = 90;
  const barHeight = 14;
  const top = 70;
  const values = groups.flatMap((g) => g.bars.filter((b) => b !== null).map((b) => b.mean + (Number.isFinite(b.std) ? b.std : 0)));
  const max = Math.max(...values, ...references.map((r) => r.value), 1e-9);
  const step = niceStep(max / 5);
  const end = Math.ceil(max / step) * step;
  const x = (/** @type {number} */ v) => left + (Math.max(0, v) / end) * (width - left - right);
  const body = [];
  let y = top;
  for (const group of groups) {
    body.push(`<text x="${left - 8}" y="${y + (group.bars.length * (barHeight + 2)) / 2 + 4}" text-anchor="end">${escapeXml(group.label)}</text>`);
    group.bars.forEach((bar, i) => {
      if (bar === null) {
        body.push(`<text x="${left + 4}" y="${y + 11}" class="axis">no result</text>`);
      } else {
        const w = Math.max(1, x(bar.mean) - left);
        body.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${SERIES_COLOURS[i % SERIES_COLOURS.length]}"/>`);
        let labelX = left + w + 5;
        if (Number.isFinite(bar.std) && bar.std > 0) {
          const lo = x(bar.mean - bar.std);
          const hi = x(bar.mean + bar.std);
          const cy = y + barHeight / 2;
          body.push(`<path d="M${lo.toFixed(1)} ${cy}H${hi.toFixed(1)}M${lo.toFixed(1)} ${cy - 4}V${cy + 4}M${hi.toFixed(1)} ${cy - 4}V${cy + 4}" stroke="#24292f" fill="none"/>`);
          labelX = hi + 5;
        }
        body.push(`<text x="${labelX.toFixed(1)}" y="${y + 11}" class="value">${escapeXml(format(bar.mean))}</text>`);
      }
      y += barHeight + 2;
    });
    y += 12;
  }
  const bottom = y;
  const grid = [];
  for (let v = 0; v <= end + step / 2; v += step) {
    grid.push(`<line x1="${x(v).toFixed(1)}" y1="${top - 6}" x2="${x(v).toFixed(1)}" y2="${bottom - 8}" class="grid"/>`,
      `<text x="${x(v).toFixed(1)}" y="${bottom + 6}" class="tick" text-anchor="middle">${escapeXml(format(v))}</text>`);
  }
  for (const ref of references) {
    grid.push(`<line x1="${x(ref.value).toFixed(1)}" y1="${top - 10}" x2="${x(ref.value).toFixed(1)}" y2="${bottom - 8}" class="ref"/>`,
      `<text x="${(x(ref.value) + 3).toFixed(1)}" y="${top - 12}" class="tick">${escapeXml(ref.label)}</text>`);
  }
  const legend = series.map((name, i) =>
    `<rect x="${10 + i * 200}" y="${bottom + 18}" width="12" height="12" fill="${SERIES_COLOURS[i % SERIES_COLOURS.length]}"/>` +
    `<text x="${26 + i * 200}" y="${bottom + 28}">${escapeXml(name)}</text>`);
  const height = bottom + 42;
  return [...svgOpen(width, height, title, axis), ...grid, ...body, ...legend, '</svg>', ''].join('\n');
}

/**
 * Line curves over a shared x axis (training steps), one per series, on a logarithmic y axis
 * when the positive values span more than a factor of 20.
 *
 * @param {object} chart
 * @param {string} chart.title
 * @param {string} chart.axis
 * @param {string} chart.xLabel
 * @param {{ name: string, x: number[], y: number[] }[]} chart.series
 * @returns {string}
 */
export function lineChart({ title, axis, xLabel, series }) {
  const width = 820;
  const left = 60;
  const top = 56;
  const plotWidth = 540;
  const plotHeight = 300;
  const points = series.flatMap((s) => s.y.filter((v) => Number.isFinite(v) && v > 0));
  const xs = series.flatMap((s) => s.x);
  const xMax = Math.max(...xs, 1);
  const xMin = Math.min(...xs, xMax);
  const yMin = Math.min(...points, 1);
  const yMax = Math.max(...points, yMin * 1.0001);
  const logarithmic = yMax / yMin > 20;
  /** @type {(v: number) => number} */
  let y;
  /** @type {number[]} */
  const ticks = [];
  if (logarithmic) {
    const lo = Math.floor(Math.log10(yMin));
    const hi = Math.ceil(Math.log10(yMax));
    y = (v) => top + plotHeight - ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * plotHeight;
    for (let d = lo; d <= hi; d++) ticks.push(10 ** d);
  } else {
    const step = niceStep(yMax / 5);
    const end = Math.ceil(yMax / step) * step;
    y = (v) => top + plotHeight - (v / end) * plotHeight;
    for (let v = 0; v <= end + step / 2; v += step) ticks.push(v);
  }
  const x = (/** @type {number} */ v) => left + ((v - xMin) / Math.max(1e-9, xMax - xMin)) * plotWidth;
  const parts = [];
  for (const t of ticks) {
    parts.push(`<line x1="${left}" y1="${y(t).toFixed(1)}" x2="${left + plotWidth}" y2="${y(t).toFixed(1)}" class="grid"/>`,
      `<text x="${left - 6}" y="${(y(t) + 3).toFixed(1)}" class="tick" text-anchor="end">${escapeXml(tickText(t))}</text>`);
  }
  const xStep = niceStep(Math.max(1, xMax - xMin) / 6);
  for (let v = Math.ceil(xMin / xStep) * xStep; v <= xMax; v += xStep) {
    parts.push(`<text x="${x(v).toFixed(1)}" y="${top + plotHeight + 16}" class="tick" text-anchor="middle">${escapeXml(tickText(v))}</text>`);
  }
  parts.push(`<text x="${left + plotWidth / 2}" y="${top + plotHeight + 34}" class="axis" text-anchor="middle">${escapeXml(xLabel)}</text>`);
  series.forEach((s, i) => {
    const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
    const path = s.x.map((xv, j) => [xv, s.y[j]]).filter(([, v]) => Number.isFinite(v) && v > 0)
      .map(([xv, v], j) => `${j ? 'L' : 'M'}${x(xv).toFixed(1)} ${y(v).toFixed(1)}`).join('');
    if (path) parts.push(`<path d="${path}" stroke="${colour}" stroke-width="1.5" fill="none"/>`);
    parts.push(`<rect x="${left + plotWidth + 20}" y="${top + i * 20}" width="12" height="3" fill="${colour}"/>`,
      `<text x="${left + plotWidth + 38}" y="${top + i * 20 + 5}">${escapeXml(s.name)}</text>`);
  });
  const height = top + plotHeight + 46;
  return [...svgOpen(width, height, title, `${axis}${logarithmic ? '; logarithmic axis' : ''}`), ...parts, '</svg>', ''].join('\n');
}

/**
 * A centred moving average over `window` points (shorter at the ends), to show a noisy
 * per-step series' trend.
 *
 * @param {number[]} values
 * @param {number} window
 * @returns {number[]}
 */
export function movingAverage(values, window) {
  const half = Math.max(0, Math.floor(window / 2));
  return values.map((_, i) => {
    const part = values.slice(Math.max(0, i - half), i + half + 1).filter(Number.isFinite);
    return part.length ? part.reduce((a, b) => a + b, 0) / part.length : NaN;
  });
}
