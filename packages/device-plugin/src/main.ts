// tpmds-device-plugin entry point (bin/tpmds-device-plugin.js imports the built copy of this file).
import { runDevicePlugin } from './cli.js';

process.exit(await runDevicePlugin(process.argv.slice(2)));
