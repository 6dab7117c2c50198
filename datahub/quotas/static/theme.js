// The hub's colour theme for a DataHub page shown inside a hub page (the usage box on the
// hub's home): the one picked with the hub's toggle, else the system's; the same rule as
// JupyterHub's darkmode.js, which the box cannot load (it has no toggle to bind).
"use strict";
(() => {
  const stored = localStorage.getItem("jupyterhub-bs-theme");
  const system = window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  const theme = stored === "light" || stored === "dark" ? stored : system;
  document.documentElement.setAttribute("data-bs-theme", theme);
})();
