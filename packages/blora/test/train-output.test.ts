import { describe, expect, it } from 'vitest';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  JsonlLog, ProgressReporter, escapeXml, formatDuration, lineChartSvg, lossCurveSvg, niceTicks, readLog, truncateLog,
} from '../src/train/index.js';
import { removeDir, tempDir } from './train-fixtures.js';

interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  text: string;
}

/**
 * A strict parser for the XML subset SVG files use (declaration, elements, attributes in
 * double quotes, text, the five predefined entities and numeric references). Throws on
 * anything malformed: unclosed or mismatched tags, bare '<' or '&', duplicate attributes,
 * more than one root.
 */
function parseXml(source: string): XmlElement {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`XML error at ${i}: ${what} near ${JSON.stringify(source.slice(i, i + 30))}`);
  };
  const entity = /^&(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
  const checkText = (text: string) => {
    for (let k = 0; k < text.length; k++) {
      if (text[k] === '<') fail('bare <');
      if (text[k] === '&' && !entity.test(text.slice(k))) fail('bare &');
    }
  };
  const skipSpace = () => {
    while (i < source.length && /\s/.test(source[i]!)) i++;
  };
  if (source.startsWith('<?xml')) {
    const end = source.indexOf('?>');
    if (end < 0) fail('unterminated declaration');
    i = end + 2;
  }
  skipSpace();
  const element = (): XmlElement => {
    const open = /^<([A-Za-z_][\w.-]*)/.exec(source.slice(i)) ?? fail('expected an element');
    i += open[0].length;
    const node: XmlElement = { name: open[1]!, attrs: {}, children: [], text: '' };
    for (;;) {
      skipSpace();
      if (source.startsWith('/>', i)) {
        i += 2;
        return node;
      }
      if (source[i] === '>') {
        i++;
        break;
      }
      const attr = /^([A-Za-z_:][\w.:-]*)="([^"]*)"/.exec(source.slice(i)) ?? fail('bad attribute');
      if (attr[1]! in node.attrs) fail(`duplicate attribute ${attr[1]}`);
      checkText(attr[2]!);
      node.attrs[attr[1]!] = attr[2]!;
      i += attr[0].length;
    }
    for (;;) {
      const next = source.indexOf('<', i);
      if (next < 0) fail(`unclosed <${node.name}>`);
      const text = source.slice(i, next);
      checkText(text);
      node.text += text;
      i = next;
      if (source.startsWith('</', i)) {
        const close = /^<\/([A-Za-z_][\w.-]*)\s*>/.exec(source.slice(i)) ?? fail('bad closing tag');
        if (close[1] !== node.name) fail(`</${close[1]}> closes <${node.name}>`);
        i += close[0].length;
        return node;
      }
      node.children.push(element());
    }
  };
  const root = element();
  skipSpace();
  if (i !== source.length) fail('content after the root element');
  return root;
}

function all(node: XmlElement, name: string): XmlElement[] {
  return [...(node.name === name ? [node] : []), ...node.children.flatMap((c) => all(c, name))];
}

describe('the XML checker used below', () => {
  it('rejects malformed documents', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow(/closes/);
    expect(() => parseXml('<svg a="1" a="2"/>')).toThrow(/duplicate/);
    expect(() => parseXml('<svg>a & b</svg>')).toThrow(/bare &/);
    expect(() => parseXml('<svg/><svg/>')).toThrow(/after the root/);
    expect(parseXml('<?xml version="1.0"?>\n<svg><t>a &amp; b</t></svg>\n').children[0]!.text).toBe('a &amp; b');
  });
});

describe('loss curve SVG', () => {
  const steps = Array.from({ length: 50 }, (_, i) => ({ step: i + 1, loss: 3 * Math.exp(-i / 20) + 0.5 }));

  it('is well-formed XML with axes, ticks, labels, a polyline per series and a legend', () => {
    const svg = lossCurveSvg(steps, [{ step: 25, loss: 1.4 }, { step: 50, loss: 1.1 }]);
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(root.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
    const texts = all(root, 'text').map((t) => t.text);
    expect(texts).toContain('step');
    expect(texts).toContain('loss');
    expect(texts).toContain('Training loss');
    expect(texts).toContain('train loss');
    expect(texts).toContain('held-out loss');
    const lines = all(root, 'polyline');
    expect(lines).toHaveLength(2);
    expect(lines[0]!.attrs.points!.split(' ')).toHaveLength(50);
    // Every point lies inside the drawing.
    for (const p of lines[0]!.attrs.points!.split(' ')) {
      const [x, y] = p.split(',').map(Number);
      expect(x).toBeGreaterThanOrEqual(0);
      expect(x).toBeLessThanOrEqual(Number(root.attrs.width));
      expect(y).toBeGreaterThanOrEqual(0);
      expect(y).toBeLessThanOrEqual(Number(root.attrs.height));
    }
    expect(all(root, 'circle')).toHaveLength(2);
    // Tick labels are round numbers (no floating-point tails).
    expect(texts.filter((t) => /^-?\d/.test(t)).every((t) => t.length <= 6)).toBe(true);
  });

  it('escapes text, breaks lines at non-finite values, and handles one point or flat data', () => {
    const svg = lineChartSvg([
      { name: 'a < b & "c"', points: [[1, 2], [2, NaN], [3, 2], [4, 2]], color: 'red' },
    ], { title: "x'<y>" });
    const root = parseXml(svg);
    expect(all(root, 'text').map((t) => t.text)).toContain('a &lt; b &amp; &quot;c&quot;');
    expect(all(root, 'polyline')).toHaveLength(1);
    expect(all(root, 'circle')).toHaveLength(1);
    expect(svg).not.toContain('NaN');
    const single = parseXml(lossCurveSvg([{ step: 1, loss: 2.5 }]));
    expect(all(single, 'circle')).toHaveLength(1);
    expect(() => parseXml(lossCurveSvg([]))).not.toThrow();
    expect(escapeXml(`<&>"'`)).toBe('&lt;&amp;&gt;&quot;&apos;');
  });

  it('chooses tick steps of 1, 2 or 5 times a power of ten that cover the range', () => {
    for (const [lo, hi] of [[0.37, 2.91], [1, 10000], [-3, 0.2], [5, 5], [0.001, 0.0013]] as const) {
      const t = niceTicks(lo, hi);
      expect(t.min).toBeLessThanOrEqual(lo);
      expect(t.max).toBeGreaterThanOrEqual(hi);
      const mantissa = t.step / 10 ** Math.floor(Math.log10(t.step));
      expect([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9)).toBe(true);
      expect(t.ticks.length).toBeGreaterThanOrEqual(2);
      expect(t.ticks.length).toBeLessThanOrEqual(12);
    }
    expect(niceTicks(0, 1).ticks).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(() => niceTicks(0, Infinity)).toThrow(/bounds must be finite/);
  });
});

describe('JSONL log', () => {
  it('appends one JSON object per line, keeps non-finite numbers, drops a torn last line, and truncates', () => {
    const dir = tempDir();
    try {
      const path = join(dir, 'log.jsonl');
      const log = new JsonlLog(path);
      log.append({ type: 'step', step: 1, loss: 2.5 });
      log.append({ type: 'step', step: 2, loss: NaN, gradNorm: Infinity });
      log.append({ type: 'eval', step: 2, loss: 2.1 });
      log.close();
      expect(() => log.append({})).toThrow(/closed/);
      const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
      expect(lines.map((l) => JSON.parse(l).step)).toEqual([1, 2, 2]);
      appendFileSync(path, '{"type":"step","st');
      const records = readLog(path);
      expect(records).toHaveLength(3);
      expect(Number.isNaN(records[1]!.loss)).toBe(true);
      expect((records[1] as { gradNorm: number }).gradNorm).toBe(Infinity);
      truncateLog(path, 1);
      expect(readLog(path).map((r) => r.step)).toEqual([1]);
      expect(readLog(join(dir, 'missing.jsonl'))).toEqual([]);
    } finally {
      removeDir(dir);
    }
  });
});

describe('progress', () => {
  it('prints plain lines when not on a terminal: the first step, about every 5%, and the last', () => {
    const out: string[] = [];
    const p = new ProgressReporter({ write: (t) => out.push(t), isTTY: false }, 40);
    for (let s = 1; s <= 40; s++) p.update(s, 2 - s / 40, 100, 0.5);
    p.finish();
    const steps = out.map((l) => Number(/^step (\d+)\/40 \| loss \d+\.\d{4} \| 200 tok\/s \| ETA \S+\n$/.exec(l)![1]));
    expect(steps).toEqual([1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]);
  });

  it('redraws one line on a terminal and ends it at the finish', () => {
    const out: string[] = [];
    const p = new ProgressReporter({ write: (t) => out.push(t), isTTY: true, columns: 100 }, 10, 4);
    p.update(5, 1.5, 10, 0.1);
    p.note('eval @ step 5');
    p.update(6, 1.4, 10, 0.1);
    p.finish();
    expect(out[0]).toMatch(/^\r\x1b\[K\[#+-+\] 5\/10 \| loss 1\.5000 \| /);
    expect(out[1]).toBe('\r\x1b[Keval @ step 5\n');
    expect(out[3]).toBe('\n');
    expect(formatDuration(3725)).toBe('1h02m');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(9.4)).toBe('9s');
    expect(formatDuration(NaN)).toBe('?');
  });
});
