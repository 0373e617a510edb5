'use strict';
// Mocha's spec reporter plus one plain closing line ("N passed, N failed, N skipped")
// that CI and humans can read without knowing mocha's own summary format.
const Mocha = require('mocha');

class TpmdsReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      const s = runner.stats;
      process.stdout.write(`\ntests: ${s.passes} passed, ${s.failures} failed, ${s.pending} skipped\n`);
    });
  }
}

module.exports = TpmdsReporter;
