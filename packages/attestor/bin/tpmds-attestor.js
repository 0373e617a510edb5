#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=96
// The attestor's runtime settings live on the line above and nowhere else: the image's entry point
// (tpmds-attestor, a link to this file), hence the DaemonSet, `pnpm bench` and the tests' spawned
// attestors (bench/launcher.ts reads them) all run with them. Why these: README.md, "Memory".
// Running `node` on this file directly skips them; a deployment must not.
import '../dist/main.js';
