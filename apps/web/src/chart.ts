/** A small canvas chart: line series over steps, or labelled points (accuracy against bytes). */
export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number; label?: string }[];
  /** Draw points only (no line). */
  scatter?: boolean;
}

export function drawChart(canvas: HTMLCanvasElement, series: readonly Series[], axes: { x: string; y: string; yMin?: number; yMax?: number }): void {
  const ctx = canvas.getContext('2d');
  if (ctx == null) return;
  const w = canvas.width;
  const h = canvas.height;
  const pad = { l: 52, r: 12, t: 12, b: 34 };
  ctx.clearRect(0, 0, w, h);
  ctx.font = '12px system-ui, sans-serif';
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return;
  let x0 = Math.min(...all.map((p) => p.x));
  let x1 = Math.max(...all.map((p) => p.x));
  let y0 = axes.yMin ?? Math.min(...all.map((p) => p.y));
  let y1 = axes.yMax ?? Math.max(...all.map((p) => p.y));
  if (series.every((s) => s.scatter)) {
    // Room for the labels of points at the edges.
    const m = (x1 - x0) * 0.12 || Math.abs(x0) * 0.1 || 1;
    [x0, x1] = [x0 - m, x1 + 2 * m];
  }
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = [y0 - 1, y1 + 1];
  const fx = (x: number): number => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
  const fy = (y: number): number => h - pad.b - ((y - y0) / (y1 - y0)) * (h - pad.t - pad.b);
  ctx.strokeStyle = '#888';
  ctx.fillStyle = '#444';
  ctx.beginPath();
  ctx.moveTo(pad.l, pad.t);
  ctx.lineTo(pad.l, h - pad.b);
  ctx.lineTo(w - pad.r, h - pad.b);
  ctx.stroke();
  ctx.fillText(axes.x, w / 2 - 20, h - 6);
  ctx.fillText(fmt(y1), 4, pad.t + 8);
  ctx.fillText(fmt(y0), 4, h - pad.b);
  ctx.fillText(fmt(x0), pad.l, h - pad.b + 14);
  ctx.fillText(fmt(x1), w - pad.r - 40, h - pad.b + 14);
  ctx.save();
  ctx.translate(14, h / 2 + 20);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(axes.y, 0, 0);
  ctx.restore();
  series.forEach((s, i) => {
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    if (!s.scatter) {
      ctx.beginPath();
      s.points.forEach((p, k) => (k === 0 ? ctx.moveTo(fx(p.x), fy(p.y)) : ctx.lineTo(fx(p.x), fy(p.y))));
      ctx.stroke();
    }
    for (const p of s.points) {
      if (s.scatter || s.points.length < 30) ctx.fillRect(fx(p.x) - 3, fy(p.y) - 3, 6, 6);
      if (p.label) ctx.fillText(p.label, fx(p.x) + 6, fy(p.y) - 6);
    }
    ctx.fillText(s.name, pad.l + 10, h - pad.b - 10 - 14 * (series.length - 1 - i));
  });
}

function fmt(v: number): string {
  return Math.abs(v) >= 1000 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(3);
}
