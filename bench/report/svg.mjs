// Horizontal bar charts as plain SVG (no dependency): one group of bars per benchmark case,
// one bar per implementation, each labelled with its value; the axis is logarithmic when the
// values span more than a factor of 20 (the CPU suites compare kernels three orders of
// magnitude apart), linear from 0 otherwise.

const WIDTH = 820;
const LABEL_WIDTH = 250;
const VALUE_WIDTH = 110;
const BAR_HEIGHT = 16;
const BAR_GAP = 4;
const GROUP_GAP = 16;
const TOP = 58;
const BOTTOM = 34;

/** Colours by implementation family, so a peer keeps its colour across charts. */
const PALETTE = [
  [/^blora native/, '#1f6feb'],
  [/^blora TypeScript/, '#9ec2f7'],
  [/^ours/, '#1f6feb'],
  [/kernel only/, '#ffc58a'],
  [/onnxruntime.*(initializer|acc4)/, '#f0883e'],
  [/^onnxruntime/, '#bc4c00'],
  [/^tfjs/, '#2da44e'],
  [/^PyTorch/, '#bc4c00'],
  [/./, '#8c959f'],
];

/** The colour of an implementation's bars. */
export function colourOf(name) {
  return PALETTE.find(([pattern]) => pattern.test(name))[1];
}

/** Escapes text for SVG content and attributes. */
export function escapeXml(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A value with three significant digits (no exponent for the ranges used here). */
export function formatValue(v) {
  if (v >= 1000) return Math.round(v).toLocaleString('en-US');
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

/** A round step (1, 2 or 5 times a power of ten) near `rough`. */
function niceStep(rough) {
  const power = 10 ** Math.floor(Math.log10(rough));
  const m = rough / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

/**
 * An SVG bar chart.
 *
 * @param {object} chart
 * @param {string} chart.title
 * @param {string} chart.axis axis caption, e.g. 'GFLOP/s (longer is better)'
 * @param {{label: string, bars: {name: string, value: number | null, note?: string}[]}[]} chart.groups
 *   a bar with value null is drawn as a 'skipped' note
 * @returns {string}
 */
export function barChart({ title, axis, groups }) {
  const values = groups.flatMap((g) => g.bars.map((b) => b.value)).filter((v) => v !== null && v > 0);
  const plotLeft = LABEL_WIDTH;
  const plotWidth = WIDTH - LABEL_WIDTH - VALUE_WIDTH;
  const max = Math.max(...values);
  // A logarithmic axis when the values span more than a factor of 20, else a linear one from 0
  // (on a log axis, bars within one decade would exaggerate their differences).
  const logarithmic = max / Math.min(...values) > 20;
  let x;
  const ticks = [];
  if (logarithmic) {
    const lo = Math.floor(Math.log10(Math.min(...values)));
    const hi = Math.ceil(Math.log10(max) + 1e-9);
    x = (v) => plotLeft + ((Math.log10(v) - lo) / Math.max(1, hi - lo)) * plotWidth;
    for (let d = lo; d <= hi; d++) ticks.push([10 ** d, d >= 0 ? (10 ** d).toLocaleString('en-US') : (10 ** d).toFixed(-d)]);
  } else {
    const step = niceStep(max / 5);
    const top = Math.ceil(max / step) * step;
    x = (v) => plotLeft + (v / top) * plotWidth;
    for (let v = 0; v <= top + step / 2; v += step) ticks.push([v, formatValue(v)]);
  }

  const rows = [];
  let y = TOP;
  for (const group of groups) {
    rows.push(`<text x="10" y="${y + 12}" class="group">${escapeXml(group.label)}</text>`);
    y += BAR_HEIGHT + BAR_GAP;
    for (const bar of group.bars) {
      const label = `<text x="${plotLeft - 8}" y="${y + 12}" class="name" text-anchor="end">${escapeXml(bar.name)}</text>`;
      if (bar.value === null || !(bar.value > 0)) {
        rows.push(`${label}<text x="${plotLeft + 4}" y="${y + 12}" class="skipped">${escapeXml(bar.note ?? 'skipped')}</text>`);
      } else {
        const w = Math.max(1, x(bar.value) - plotLeft);
        rows.push(`${label}<rect x="${plotLeft}" y="${y}" width="${w.toFixed(1)}" height="${BAR_HEIGHT}" fill="${colourOf(bar.name)}"/>` +
          `<text x="${(plotLeft + w + 5).toFixed(1)}" y="${y + 12}" class="value">${escapeXml(formatValue(bar.value))}</text>`);
      }
      y += BAR_HEIGHT + BAR_GAP;
    }
    y += GROUP_GAP;
  }
  const height = y + BOTTOM;
  const grid = [];
  for (const [value, text] of ticks) {
    const gx = (value === 0 ? plotLeft : x(value)).toFixed(1);
    grid.push(`<line x1="${gx}" y1="${TOP - 6}" x2="${gx}" y2="${y - GROUP_GAP}" class="grid"/>`);
    grid.push(`<text x="${gx}" y="${y - GROUP_GAP + 16}" class="tick" text-anchor="middle">${escapeXml(value === 0 ? '0' : text)}</text>`);
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${escapeXml(title)}">`,
    '<style>text{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;font-size:12px;fill:#24292f}' +
      '.title{font-size:15px;font-weight:600}.axis{font-size:11px;fill:#57606a}.group{font-weight:600}' +
      '.name{fill:#424a53}.value{font-size:11px}.tick{font-size:10px;fill:#57606a}.skipped{font-style:italic;fill:#8c959f}' +
      '.grid{stroke:#d0d7de;stroke-width:1}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="22" class="title">${escapeXml(title)}</text>`,
    `<text x="10" y="40" class="axis">${escapeXml(axis)}${logarithmic ? '; logarithmic axis' : ''}</text>`,
    ...grid,
    ...rows,
    '</svg>',
    '',
  ].join('\n');
}
