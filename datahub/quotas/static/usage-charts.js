// Draws the Plotly figures of a DataHub page. Each figure is a JSON data block
// (<script type="application/json" data-plotly-target="ID">) next to its target element:
// the page's Content-Security-Policy allows no inline script, so this file does it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const block of document.querySelectorAll("script[type='application/json'][data-plotly-target]")) {
    const target = document.getElementById(block.dataset.plotlyTarget);
    if (!target) continue;
    const figure = JSON.parse(block.textContent);
    window.Plotly.newPlot(target, figure.data, figure.layout, { responsive: true, displaylogo: false });
  }
});
