#!/usr/bin/env node
/*
 * Build the prebuilt labextension (into ../../datahub/labextension) with JupyterLab's
 * builder against the JupyterLab core pinned in package.json (@jupyterlab/core-meta), so
 * the Python package build needs Node and npm only, no JupyterLab of its own.
 */
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const here = path.resolve(__dirname, '..');
const coreDir = fs.mkdtempSync(path.join(os.tmpdir(), 'datahub-lab-core-'));
try {
  // The builder reads the core's package.json from a directory of its own.
  fs.copyFileSync(
    require.resolve('@jupyterlab/core-meta/core.package.json', { paths: [here] }),
    path.join(coreDir, 'package.json')
  );
  const builder = require.resolve('@jupyterlab/builder/lib/build-labextension.js', {
    paths: [here]
  });
  const args = [builder, '--core-path', coreDir, ...process.argv.slice(2), here];
  execFileSync(process.execPath, args, { stdio: 'inherit', cwd: here });
} finally {
  fs.rmSync(coreDir, { recursive: true, force: true });
}
