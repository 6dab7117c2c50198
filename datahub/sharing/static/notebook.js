/* DataHub gallery pages: draw Plotly charts from their JSON and confirm destructive forms.
 *
 * This is the only script on a shared notebook's page (with plotly.min.js). Figures
 * come from data-figure attributes, sanitised on the server and parsed here as data,
 * never evaluated; the page's Content-Security-Policy refuses inline scripts.
 */
"use strict";

(function () {
  function drawCharts() {
    var charts = document.querySelectorAll(".dh-chart[data-figure]");
    charts.forEach(function (element) {
      var figure;
      try {
        figure = JSON.parse(element.getAttribute("data-figure"));
      } catch (err) {
        element.textContent = "This chart could not be read.";
        return;
      }
      if (!window.Plotly) {
        element.textContent = "Charts need plotly.js, which did not load.";
        return;
      }
      window.Plotly.newPlot(element, figure.data || [], figure.layout || {}, {
        responsive: true,
        displaylogo: false,
      });
    });
  }

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.getAttribute("data-confirm"))) {
          event.preventDefault();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    confirmForms();
  });
})();
