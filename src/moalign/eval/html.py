"""The self-contained HTML report: inline SVG fronts, the metrics table, and sample generations on click.

No CDN and no plotting library in the page (it must open offline, years later): the fronts are SVG drawn here,
the data sits in the page as JSON, and about forty lines of plain JavaScript show a point's generations when it
is clicked. ``index.html#run=0&point=3`` opens with that point selected (links, and the headless-browser test).
Degenerate points (mostly collapsed responses) are drawn hollow with a cross and left out of the front line
unless the run included them; a warning above the fronts names each run that has some.
"""

from __future__ import annotations

import html
import json

import numpy as np

from moalign.plot import COLORS, FADED_ALPHA, objective_pairs, point_labels, preference_label

WIDTH, HEIGHT, MARGIN = 520, 420, 56

_SCRIPT = """
const DATA = JSON.parse(document.getElementById('data').textContent);
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls; return e; }
function fmt(x) { return (x === null || x === undefined) ? '–' : Number(x).toPrecision(4); }
function show(r, p) {
  const run = DATA.runs[r], point = run && run.points[p];
  if (!point) return;
  document.querySelectorAll('.pt').forEach(c => c.classList.toggle('selected', +c.dataset.run === r && +c.dataset.point === p));
  const box = document.getElementById('details'); box.replaceChildren();
  const head = el('h3', run.label + '  w = ' + point.label); head.style.color = run.color; box.appendChild(head);
  const stats = el('p', DATA.objectives.map((o, i) => o + ' ' + fmt(point.mean[i]) + ' ± ' + fmt(point.se[i])).join(';  ')
    + ';  collapse rate ' + fmt(point.collapse_rate) + ';  ' + point.n + ' prompts'
    + (point.degenerate ? ';  DEGENERATE' : ''));
  box.appendChild(stats);
  point.samples.forEach(s => {
    const card = el('div', undefined, 'sample' + (s.collapsed ? ' collapsed' : ''));
    card.appendChild(el('div', 'prompt #' + s.index, 'label')); card.appendChild(el('pre', s.prompt, 'prompt'));
    card.appendChild(el('div', 'response' + (s.collapsed ? ' (collapsed)' : ''), 'label'));
    card.appendChild(el('pre', s.response, 'response'));
    card.appendChild(el('div', DATA.objectives.map(o => o + ' ' + fmt(s.scores[o])).join(';  '), 'scores'));
    box.appendChild(card);
  });
}
document.querySelectorAll('.pt').forEach(c => c.addEventListener('click', () => {
  history.replaceState(null, '', '#run=' + c.dataset.run + '&point=' + c.dataset.point);
  show(+c.dataset.run, +c.dataset.point); }));
function fromHash() { const m = location.hash.match(/run=(\\d+)&point=(\\d+)/); if (m) show(+m[1], +m[2]); }
window.addEventListener('hashchange', fromHash); fromHash();
"""

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 20px; color: #222; }
.fronts { display: flex; flex-wrap: wrap; gap: 12px; } svg { background: #fff; border: 1px solid #ddd; }
.pt { cursor: pointer; } .pt.selected { stroke: #000; stroke-width: 2.5; }
table { border-collapse: collapse; font-size: 13px; margin: 12px 0; } td, th { border: 1px solid #ccc; padding: 3px 7px; }
#details { border-top: 2px solid #eee; margin-top: 10px; } .sample { border: 1px solid #ddd; margin: 6px 0; padding: 6px; }
.sample.collapsed { background: #fff4f4; } .label { font-size: 11px; color: #777; } .scores { font-size: 12px; color: #444; }
pre { white-space: pre-wrap; margin: 2px 0 6px; font-size: 12px; } .legend span { margin-right: 14px; font-weight: 600; }
.warning { background: #fff4f4; border-left: 4px solid #c00; padding: 6px 10px; }
"""


def _scale(values: np.ndarray, lo_px: float, hi_px: float):
    lo, hi = float(values.min()), float(values.max())
    pad = (hi - lo) * 0.08 if hi > lo else max(abs(lo) * 0.05, 0.05)
    lo, hi = lo - pad, hi + pad
    return (lambda v: lo_px + (float(v) - lo) / (hi - lo) * (hi_px - lo_px)), np.linspace(lo, hi, 5)


def svg_panel(runs, objectives: list[str], i: int, j: int) -> str:
    """One SVG scatter of objective i (x) against j (y) for every run; circles carry run/point indices."""
    from moalign.pareto import is_nondominated

    every = np.concatenate([r.points for r in runs])
    sx, xticks = _scale(every[:, i], MARGIN, WIDTH - 16)
    sy, yticks = _scale(every[:, j], HEIGHT - MARGIN, 16)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" class="front">']
    for t in xticks:
        parts.append(f'<line x1="{sx(t):.1f}" y1="16" x2="{sx(t):.1f}" y2="{HEIGHT - MARGIN}" stroke="#eee"/>'
                     f'<text x="{sx(t):.1f}" y="{HEIGHT - MARGIN + 16}" font-size="10" text-anchor="middle">{t:.3g}</text>')
    for t in yticks:
        parts.append(f'<line x1="{MARGIN}" y1="{sy(t):.1f}" x2="{WIDTH - 16}" y2="{sy(t):.1f}" stroke="#eee"/>'
                     f'<text x="{MARGIN - 4}" y="{sy(t) + 3:.1f}" font-size="10" text-anchor="end">{t:.3g}</text>')
    parts.append(f'<text x="{(WIDTH + MARGIN) / 2}" y="{HEIGHT - 12}" font-size="13" text-anchor="middle">{html.escape(objectives[i])}</text>'
                 f'<text x="14" y="{HEIGHT / 2}" font-size="13" text-anchor="middle" transform="rotate(-90 14 {HEIGHT / 2})">{html.escape(objectives[j])}</text>')
    for r, run in enumerate(runs):
        color, points, used, degenerate = COLORS[r % len(COLORS)], run.points, run.used, run.degenerate
        keep = np.zeros(len(points), dtype=bool)
        if used.any():
            keep[used] = is_nondominated(points[used])
        front = points[keep][np.argsort(points[keep][:, i])]
        path = " ".join(f"{sx(p[i]):.1f},{sy(p[j]):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-opacity="0.6"/>')
        for p, (point, w, solid, text) in enumerate(zip(points, run.ws, keep, point_labels(run.ws, points))):
            alpha = 1.0 if solid else FADED_ALPHA
            x, y, tip = sx(point[i]), sy(point[j]), f"{html.escape(run.label)} w={preference_label(w)}"
            fill = f'fill="none" stroke="{color}" stroke-width="1.5"' if degenerate[p] else f'fill="{color}" fill-opacity="{alpha}"'
            tip += " (degenerate)" if degenerate[p] else ""
            parts.append(f'<circle class="pt" data-run="{r}" data-point="{p}" cx="{x:.1f}" cy="{y:.1f}" '
                         f'r="6" {fill}><title>{tip}</title></circle>')
            if degenerate[p]:
                parts.append(f'<path class="degenerate" d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}'
                             f'M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}" stroke="{color}" stroke-width="1.5"/>')
            if text is not None:
                parts.append(f'<text x="{sx(point[i]) + 7:.1f}" y="{sy(point[j]) - 7:.1f}" font-size="9" fill="{color}" '
                             f'fill-opacity="{min(1.0, alpha + 0.2)}">{html.escape(text)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def page_data(runs) -> dict:
    """The JSON embedded in the page: per run, per point, the summary and the sample generations."""
    data = {"objectives": runs[0].objectives, "runs": []}
    for r, run in enumerate(runs):
        points = [{"label": preference_label(p["w"]), "w": p["w"], "mean": p["mean"], "se": p["se"], "n": p["n"],
                   "collapse_rate": p["collapse_rate"], "degenerate": bool(p.get("degenerate", False)),
                   "samples": run.samples.get(p["key"], [])}
                  for p in run.result["points"]]
        data["runs"].append({"label": run.label, "color": COLORS[r % len(COLORS)], "points": points})
    return data


# Inside <script> the HTML parser, not JSON, decides where the element ends: "</script" ends it and "<!--"
# followed by "<script" switches to a state where the next "</script>" no longer does. Escaping every <, >
# and & (valid JSON escapes, decoded back by JSON.parse) leaves none of these sequences; U+2028/9 are
# escaped for old JavaScript engines that treat them as line ends.
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(obj) -> str:
    """``obj`` as JSON that is safe inside a ``<script>`` element whatever text it holds (generations)."""
    text = json.dumps(obj, default=lambda o: o.tolist())
    return text.translate(str.maketrans(_SCRIPT_ESCAPES))


def render_html(runs, header: list[str], rows: list[list[str]], title: str = "moalign report", *,
                warnings: list[str] = ()) -> str:
    """The whole page as one string (no external resources); each of ``warnings`` is a paragraph above the fronts."""
    objectives = runs[0].objectives
    panels = "".join(svg_panel(runs, objectives, i, j) for i, j in objective_pairs(len(objectives)))
    legend = "".join(f'<span style="color:{COLORS[r % len(COLORS)]}">● {html.escape(run.label)}</span>' for r, run in enumerate(runs))
    table = "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    table += "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows) + "</table>"
    data = script_json(page_data(runs))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>'
            f"<body><h1>{html.escape(title)}</h1>"
            + "".join(f'<p class="warning"><b>Warning</b> {html.escape(w)}</p>' for w in warnings)
            + f"<p class=\"legend\">{legend}</p>"
            "<p>Each point is one preference w (mean score over the test prompts); faded points are dominated within "
            "their run; hollow crossed points are degenerate (mostly collapsed responses). Click a point to see sample "
            "generations for that preference.</p>"
            f'<div class="fronts">{panels}</div><div id="details"><p>No point selected.</p></div>'
            f"<h2>Metrics</h2>{table}<p>Parameters of every metric: metrics.md and metrics.json beside this page.</p>"
            f'<script type="application/json" id="data">{data}</script><script>{_SCRIPT}</script></body></html>')
