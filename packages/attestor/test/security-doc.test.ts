// SECURITY.md (issue 16, section 3): it exists, the READMEs link it, its links and anchors resolve,
// it covers what the issue asks for, and the metric and log names it promises are the ones the
// attestor really emits.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { AttestorMetrics } from '../src/metrics.js';
import { REPO } from './e2e-support.js';

const read = (p: string): string => readFileSync(join(REPO, p), 'utf8');

/** GitHub's heading anchors: lower case, punctuation other than - and _ dropped, spaces to -. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  for (const m of markdown.matchAll(/^#{1,6} (.+)$/gm)) {
    out.add(m[1]!.trim().toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-'));
  }
  return out;
}

/** Relative markdown links of `file` resolve to existing files, and their #anchors to headings. */
function checkLinks(file: string): string[] {
  const text = read(file);
  const targets: string[] = [];
  for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
    const link = m[1]!;
    if (/^[a-z]+:/.test(link)) continue;
    const [path, anchor] = link.split('#') as [string, string | undefined];
    const target = path === '' ? file : join(dirname(file), path);
    assert.ok(existsSync(join(REPO, target)), `${file}: link ${link} -> ${target} does not exist`);
    if (anchor !== undefined) assert.ok(anchors(read(target)).has(anchor), `${file}: link ${link}: no heading #${anchor} in ${target}`);
    targets.push(resolve('/', target).slice(1) + (anchor ? `#${anchor}` : ''));
  }
  return targets;
}

describe('SECURITY.md: the threat model, written down', () => {
  const doc = read('SECURITY.md');

  it('the README and the attestor README link it; its own links and anchors resolve', () => {
    assert.ok(checkLinks('README.md').includes('SECURITY.md'), 'README.md links SECURITY.md');
    assert.ok(checkLinks('packages/attestor/README.md').includes('SECURITY.md'), 'the attestor README links SECURITY.md');
    const links = checkLinks('SECURITY.md');
    assert.ok(links.includes('packages/attestor/README.md#security-model'), 'links the attestor\'s Security model');
    assert.ok(links.some((l) => l.startsWith('manifests/README.md')), 'links the manifests README (NetworkPolicy, metrics)');
  });

  it('covers assets, actors, deployment modes, ImportBlob/Attest semantics and how to report a vulnerability', () => {
    const sections = [...anchors(doc)];
    for (const s of ['reporting-a-vulnerability', 'assets', 'actors', 'what-each-deployment-mode-protects', 'what-importblob-and-attest-actually-bind']) {
      assert.ok(sections.includes(s), `section ${s} (have ${sections.join(', ')})`);
    }
    for (const asset of ['Endorsement key', 'Attestation keys', 'Signing keys', 'Sealed secrets', 'state directory']) assert.match(doc, new RegExp(asset));
    for (const actor of ['Pods on the node', 'cluster network', 'Node root', 'remote verifier']) assert.match(doc, new RegExp(actor));
    for (const mode of ['`--auth k8s`', '`--auth mtls`', '`--auth none`', '--insecure', 'dev overlay', 'TLS']) assert.ok(doc.includes(mode), mode);
    assert.match(doc, /encrypted to the \*\*node's EK, not to a pod\*\*/);
    for (const binder of ['PCR policy', '--allow', 'TLS']) assert.ok(doc.includes(binder), binder);
    assert.doesNotMatch(doc, /TODO|TBD|XXX/);
  });

  it('names only metrics and log fields the attestor emits', () => {
    const m = new AttestorMetrics();
    m.countTpmReclaimed('object', 2);
    m.countTpmExhausted('session');
    const rendered = m.render();
    for (const name of new Set(doc.match(/tpmds_[a-z_]+/g) ?? [])) assert.ok(rendered.includes(`# TYPE ${name} `), `${name} is a metric`);
    assert.match(rendered, /tpmds_tpm_reclaimed_total\{kind="object"\} 2/);
    assert.match(rendered, /tpmds_tpm_exhausted_total\{kind="session"\} 1/);
    const server = read('packages/attestor/src/server.ts');
    for (const field of ['sealedObject', 'pcrBound']) {
      assert.ok(doc.includes(`\`${field}\``), `SECURITY.md names ${field}`);
      assert.ok(server.includes(`log['${field}']`), `the ImportBlob log line has ${field}`);
    }
    assert.ok(read('packages/attestor/src/backend-factory.ts').includes('reclaimed the TPM: flushed ${objects} objects, ${sessions} sessions left by an earlier process'));
  });
});
