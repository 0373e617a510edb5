// tpmds-attestor entry point (bin/tpmds-attestor.js imports the built copy of this file).
import { runAttestor } from './cli.js';

process.exit(await runAttestor(process.argv.slice(2), process.env));
