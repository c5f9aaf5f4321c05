// The accuracy curve of "Teach by example": leave-one-out accuracy after each fit, against the
// number of examples, as an inline SVG (no chart library). Chance (1 / labels) is a dotted line.

export interface CurvePoint {
  examples: number;
  accuracy: number;
  method: string;
}

const W = 320;
const H = 140;
const PAD = 28;
const SVG = "http://www.w3.org/2000/svg";

function node<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text = ""): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.textContent = text;
  return el;
}

export function accuracyCurve(points: CurvePoint[], labels: number): SVGSVGElement {
  const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img", class: "fewshot-curve-svg" });
  svg.setAttribute("aria-label", points.length
    ? `Leave-one-out accuracy by number of examples: ${points.map((p) => `${p.examples}: ${(p.accuracy * 100).toFixed(0)}%`).join(", ")}`
    : "Leave-one-out accuracy appears here as you add examples");
  svg.dataset["points"] = JSON.stringify(points.map((p) => [p.examples, p.accuracy]));
  const maxX = Math.max(2, ...points.map((p) => p.examples));
  const x = (n: number) => PAD + ((n - 1) / (maxX - 1)) * (W - PAD - 8);
  const y = (a: number) => H - PAD - a * (H - PAD - 8);
  svg.append(
    node("line", { x1: PAD, y1: y(0), x2: W - 8, y2: y(0), class: "axis" }),
    node("line", { x1: PAD, y1: y(0), x2: PAD, y2: y(1), class: "axis" }),
    node("text", { x: 2, y: y(1) + 4, class: "tick" }, "100%"),
    node("text", { x: 8, y: y(0) + 4, class: "tick" }, "0%"),
    node("text", { x: W / 2, y: H - 2, class: "tick", "text-anchor": "middle" }, "examples"),
    node("text", { x: x(1), y: y(0) + 12, class: "tick", "text-anchor": "middle" }, "1"),
    node("text", { x: x(maxX), y: y(0) + 12, class: "tick", "text-anchor": "middle" }, String(maxX)),
  );
  if (labels > 1) svg.append(node("line", { x1: PAD, y1: y(1 / labels), x2: W - 8, y2: y(1 / labels), class: "chance" }));
  if (points.length) {
    svg.append(node("polyline", { points: points.map((p) => `${x(p.examples)},${y(p.accuracy)}`).join(" "), class: "line" }));
    for (const p of points) svg.append(node("circle", { cx: x(p.examples), cy: y(p.accuracy), r: 3, class: `dot ${p.method}` }));
  }
  return svg;
}
