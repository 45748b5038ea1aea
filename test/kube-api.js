// A real kube-apiserver for the tests of test/ (packages/lab's ControlPlane: etcd 3.6 and
// kube-apiserver built by hack/kube/build.sh, on loopback), with a small client for raw API calls
// as the admin or with a bearer token, and kubectl against it.
'use strict';
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync } = require('node:fs');
const https = require('node:https');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { ControlPlane, kubeTool, kubeToolsReady } = require('../packages/lab/dist/index.js');

/** Starts a control plane named `name`; `stop()` ends it and removes its files. */
async function startApiServer(name, options = {}) {
  const cp = await ControlPlane.start({ cluster: name, dir: mkdtempSync(join(tmpdir(), `weft-${name}-`)), ...options });
  const user = JSON.parse(readFileSync(cp.kubeconfig, 'utf8')).users[0].user;
  const admin = new https.Agent({ keepAlive: true, maxSockets: 8, ca: cp.files.ca.cert, cert: Buffer.from(user['client-certificate-data'], 'base64'), key: Buffer.from(user['client-key-data'], 'base64') });
  const anonymous = new https.Agent({ keepAlive: true, maxSockets: 8, ca: cp.files.ca.cert });

  /** One API request; resolves with the status and the parsed body (a Status on errors). */
  function call(method, path, body, token) {
    return new Promise((resolve, reject) => {
      const headers = { accept: 'application/json' };
      if (body !== undefined) headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
      if (token) headers.authorization = `Bearer ${token}`;
      const req = https.request(new URL(path, cp.files.server), { method, headers, agent: token ? anonymous : admin, timeout: 30_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : undefined }));
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  }

  function kubectl(args, input) {
    return spawnSync(kubeTool('kubectl'), ['--kubeconfig', cp.kubeconfig, ...args], { encoding: 'utf8', input, timeout: 60_000 });
  }

  return {
    cp,
    call,
    kubectl,
    async stop() {
      admin.destroy();
      anonymous.destroy();
      await cp.stop();
    },
  };
}

/**
 * A `before` hook for a *.kube.test.js file: the Kubernetes components may still be building beside
 * the tests before it (hack/install.sh --kube-in-background); wait for them, as long as a cold build takes.
 */
function waitForKubeBuild() {
  before(async function () {
    this.timeout(45 * 60_000);
    await kubeToolsReady();
  });
}

module.exports = { startApiServer, waitForKubeBuild };
