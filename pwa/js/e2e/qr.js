// A QR code drawn on the device, as SVG: for links whose #fragment carries
// a key, which must not go to the server to be drawn there. The element
// keeps the link it encodes in data-link (the tests read it from there).
import {encode} from "../vendor/uqr.js";

const SVG = "http://www.w3.org/2000/svg";

export function qrElement(text, label) {
  const {data, size} = encode(text, {ecc: "M", border: 2});
  let path = "";
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) if (data[y][x]) path += `M${x} ${y}h1v1h-1z`;
  }
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${size} ${size}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.dataset.link = text;
  const background = document.createElementNS(SVG, "rect");
  background.setAttribute("width", String(size));
  background.setAttribute("height", String(size));
  background.setAttribute("fill", "#fff");
  const modules = document.createElementNS(SVG, "path");
  modules.setAttribute("d", path);
  modules.setAttribute("fill", "#000");
  svg.append(background, modules);
  return svg;
}
