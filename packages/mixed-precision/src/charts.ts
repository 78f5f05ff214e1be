import type { SensitivityResult } from './sensitivity.js';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3);
}

/**
 * A heat map of a sensitivity analysis as a standalone SVG: one row per layer, one column per
 * level, each cell coloured by its drop (white: none, red: the worst) and labelled with it.
 */
export function sensitivityChart(result: SensitivityResult): string {
  const cw = 74;
  const ch = 22;
  const left = 10 + Math.max(60, ...result.rows.map((r) => r.node.length * 7));
  const top = 52;
  const w = left + cw * result.levels.length + 10;
  const h = top + ch * result.rows.length + 28;
  const worst = Math.max(1e-12, ...result.rows.flatMap((r) => r.levels.map((l) => l.drop)));
  const scale = result.metric === 'accuracy' ? 100 : 1;
  const unit = result.metric === 'accuracy' ? 'accuracy drop (pts)' : 'loss increase';
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="10" y="18" font-size="14">${esc(`${result.method} sensitivity: ${unit}, baseline ${fmt(result.baseline * scale)}, ${result.samples} samples`)}</text>`,
  ];
  result.levels.forEach((l, j) => out.push(`<text x="${left + j * cw + cw / 2}" y="${top - 8}" text-anchor="middle">${esc(String(l))}</text>`));
  result.rows.forEach((r, i) => {
    const y = top + i * ch;
    out.push(`<text x="${left - 6}" y="${y + 15}" text-anchor="end">${esc(r.node)}</text>`);
    r.levels.forEach((l, j) => {
      const t = Math.max(0, Math.min(1, l.drop / worst));
      const g = Math.round(255 * (1 - t));
      out.push(`<rect x="${left + j * cw}" y="${y}" width="${cw - 2}" height="${ch - 2}" fill="rgb(255,${g},${g})" stroke="#ccc"/>`);
      out.push(`<text x="${left + j * cw + cw / 2}" y="${y + 15}" text-anchor="middle">${fmt(l.drop * scale)}</text>`);
    });
  });
  out.push(`<text x="10" y="${h - 8}" fill="#555">${esc('rows: layers; columns: levels; cell: the drop with only that layer compressed')}</text>`, '</svg>');
  return `${out.join('\n')}\n`;
}

/**
 * The Pareto frontier of a bit allocation (cost → total sensitivity) as a standalone SVG line
 * chart, with the chosen plan and the budget marked.
 */
export function frontierChart(frontier: readonly { cost: number; sensitivity: number }[], chosen: { cost: number; sensitivity: number; budget: number }, costLabel = 'cost'): string {
  const w = 560;
  const h = 360;
  const m = { l: 70, r: 20, t: 30, b: 50 };
  const xs = frontier.map((p) => p.cost);
  const ys = frontier.map((p) => p.sensitivity);
  const x0 = Math.min(...xs, chosen.budget);
  const x1 = Math.max(...xs, chosen.budget);
  const y1 = Math.max(1e-12, ...ys);
  const X = (v: number): number => m.l + ((v - x0) / Math.max(1e-12, x1 - x0)) * (w - m.l - m.r);
  const Y = (v: number): number => h - m.b - (v / y1) * (h - m.t - m.b);
  const path = frontier.map((p, i) => `${i === 0 ? 'M' : 'L'}${X(p.cost).toFixed(1)},${Y(p.sensitivity).toFixed(1)}`).join(' ');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    `<text x="${m.l}" y="18" font-size="14">Pareto frontier: least total sensitivity (Ω) by ${esc(costLabel)}</text>`,
    `<line x1="${m.l}" y1="${h - m.b}" x2="${w - m.r}" y2="${h - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${h - m.b}" stroke="black"/>`,
    `<text x="${m.l}" y="${h - m.b + 16}">${x0.toExponential(2)}</text>`,
    `<text x="${w - m.r}" y="${h - m.b + 16}" text-anchor="end">${x1.toExponential(2)}</text>`,
    `<text x="${(m.l + w - m.r) / 2}" y="${h - 12}" text-anchor="middle">${esc(costLabel)}</text>`,
    `<text x="${m.l - 6}" y="${m.t + 4}" text-anchor="end">${y1.toExponential(2)}</text>`,
    `<path d="${path}" fill="none" stroke="#1f77b4" stroke-width="2"/>`,
    `<line x1="${X(chosen.budget).toFixed(1)}" y1="${m.t}" x2="${X(chosen.budget).toFixed(1)}" y2="${h - m.b}" stroke="#999" stroke-dasharray="4 3"/>`,
    `<circle cx="${X(chosen.cost).toFixed(1)}" cy="${Y(chosen.sensitivity).toFixed(1)}" r="5" fill="#d62728"/>`,
    `<text x="${(X(chosen.cost) + 8).toFixed(1)}" y="${(Y(chosen.sensitivity) - 8).toFixed(1)}">chosen (budget dashed)</text>`,
    '</svg>',
    '',
  ].join('\n');
}
