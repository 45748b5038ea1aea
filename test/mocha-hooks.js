// Root hooks of the suite (.mocharc's "require"): the kernel lane starts with the run, as root,
// when its test is in the run, so its emulated minutes overlap the other tests.
'use strict';
const { kernelLane } = require('./kernel-lane-run');

exports.mochaHooks = {
  beforeAll() {
    if (!process.getuid || process.getuid() !== 0) return;
    const suites = this.test?.parent?.suites ?? [];
    if (suites.some((s) => s.title.startsWith('kernel lane (root)'))) void kernelLane();
  },
};
