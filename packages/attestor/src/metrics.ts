// A small Prometheus registry (text exposition format 0.0.4) for the attestor's own metrics.
import { EVENT_LOG_STATUSES, type EventLogKind, type EventLogMetrics, type EventLogStatus } from './event-logs.js';

/** Label names -> values of one series. */
type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatNumber(n: number): string {
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function keyOf(names: readonly string[], labels: Labels): string {
  return names.map((n) => labels[n] ?? '').join('\u0000');
}

/** One value per label set, rendered as a `type` (counter or gauge); Counter and LabeledGauge say how it changes. */
abstract class LabeledValues {
  readonly #series = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly type: 'counter' | 'gauge',
  ) {}

  /** Sets the series of `labels` to `next(its current value)`. */
  protected update(labels: Labels, next: (current: number | undefined) => number): void {
    const key = keyOf(this.labelNames, labels);
    const s = this.#series.get(key);
    if (s) s.value = next(s.value);
    else this.#series.set(key, { labels: pick(this.labelNames, labels), value: next(undefined) });
  }

  protected value(labels: Labels): number | undefined {
    return this.#series.get(keyOf(this.labelNames, labels))?.value;
  }

  render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const s of this.#series.values()) out.push(`${this.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
    return out.join('\n') + '\n';
  }
}

/** A counter with a fixed set of label names. */
export class Counter extends LabeledValues {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'counter');
  }

  inc(labels: Labels, by = 1): void {
    this.update(labels, (v) => (v ?? 0) + by);
  }

  /** Current value of one series (0 when never incremented). */
  get(labels: Labels): number {
    return this.value(labels) ?? 0;
  }
}

/** A histogram (cumulative buckets, sum, count) with a fixed set of label names. */
export class Histogram {
  readonly #series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  readonly buckets: readonly number[];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    buckets: readonly number[],
  ) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    const key = keyOf(this.labelNames, labels);
    let s = this.#series.get(key);
    if (!s) {
      s = { labels: pick(this.labelNames, labels), counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, s);
    }
    for (let i = 0; i < this.buckets.length; i++) if (value <= (this.buckets[i] as number)) (s.counts[i] as number)++;
    s.sum += value;
    s.count++;
  }

  /** Number of observations of one series. */
  count(labels: Labels): number {
    return this.#series.get(keyOf(this.labelNames, labels))?.count ?? 0;
  }

  render(): string {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.#series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', formatNumber(b)])} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${formatLabels(s.labels)} ${formatNumber(s.sum)}`);
      out.push(`${this.name}_count${formatLabels(s.labels)} ${s.count}`);
    }
    return out.join('\n') + '\n';
  }
}

/** A gauge without labels. */
export class Gauge {
  value = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  set(v: number): void {
    this.value = v;
  }

  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${formatNumber(this.value)}\n`;
  }
}

/** A gauge with a fixed set of label names. */
export class LabeledGauge extends LabeledValues {
  constructor(name: string, help: string, labelNames: readonly string[]) {
    super(name, help, labelNames, 'gauge');
  }

  set(labels: Labels, value: number): void {
    this.update(labels, () => value);
  }

  /** Current value of one series (undefined when never set). */
  get(labels: Labels): number | undefined {
    return this.value(labels);
  }
}

function pick(names: readonly string[], labels: Labels): Labels {
  const out: Labels = {};
  for (const n of names) out[n] = labels[n] ?? '';
  return out;
}

const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TPM_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What a backend may record into: TPM command latencies, reclaimed and exhausted TPM memory. */
export interface TpmMetrics {
  /** Records one TPM command (e.g. "TPM2_Quote") that took `seconds`. */
  observeTpmCommand(command: string, seconds: number): void;
  /** Records handles left by an earlier process that the attestor flushed (kind "object" or "session"). */
  countTpmReclaimed(kind: 'object' | 'session', count: number): void;
  /** Records a call refused because the TPM's object or session memory is held by another user. */
  countTpmExhausted(kind: 'object' | 'session'): void;
  /** Records how many flows wait for the TPM now. */
  setTpmQueueDepth(depth: number): void;
  /** Records that a flow of `method` started after waiting `seconds` in the TPM queue. */
  observeTpmQueueWait(method: string, seconds: number): void;
  /** Records a flow that never ran: the queue was full, or its caller went away while it waited. */
  countTpmQueueRejected(reason: 'full' | 'cancelled'): void;
}

/** The attestor's metrics, served on /metrics. */
export class AttestorMetrics implements TpmMetrics, EventLogMetrics {
  readonly rpcRequests = new Counter('tpmds_rpc_requests_total', 'gRPC requests by method and status code.', ['method', 'code']);
  readonly rpcDuration = new Histogram('tpmds_rpc_duration_seconds', 'gRPC request latency by method.', ['method'], RPC_BUCKETS);
  readonly tpmCommandDuration = new Histogram(
    'tpmds_tpm_command_duration_seconds',
    'TPM command latency by command.',
    ['command'],
    TPM_BUCKETS,
  );
  /** Refused calls by why (no identity label: who was refused goes to the log, not to metrics). */
  readonly authFailures = new Counter('tpmds_auth_failures_total', 'gRPC calls refused by caller authentication or the --allow policy, by reason.', ['reason']);
  readonly tpmReclaimed = new Counter(
    'tpmds_tpm_reclaimed_total',
    'Transient objects and sessions left on the TPM by an earlier process that the attestor flushed, by kind.',
    ['kind'],
  );
  readonly tpmExhausted = new Counter(
    'tpmds_tpm_exhausted_total',
    'Calls answered UNAVAILABLE because another user of the TPM holds its object or session memory, by kind.',
    ['kind'],
  );
  readonly tpmQueueDepth = new Gauge('tpmds_tpm_queue_depth', 'TPM flows (calls) waiting for the TPM.');
  readonly tpmQueueWait = new Histogram('tpmds_tpm_queue_wait_seconds', 'Time a call waited in the TPM queue before its first TPM command, by method.', ['method'], RPC_BUCKETS);
  /** No identity label: who was refused goes to the log, not to metrics. */
  readonly tpmQueueRejected = new Counter(
    'tpmds_tpm_queue_rejected_total',
    'Calls that never reached the TPM: the queue was full (RESOURCE_EXHAUSTED) or the caller cancelled or ran out of time while waiting, by reason.',
    ['reason'],
  );
  readonly eventLogStatus = new LabeledGauge(
    'tpmds_event_log_status',
    'What quotes carry of each event log (log: firmware, userspace): 1 for its current status (ok, empty, missing, unreadable, absent), 0 for the others.',
    ['log', 'status'],
  );
  readonly eventLogBytes = new LabeledGauge('tpmds_event_log_bytes', 'Size of each event log sent with quotes (0 when none is sent).', ['log']);
  readonly #startTime = Date.now() / 1000;

  setEventLog(log: EventLogKind, status: EventLogStatus, bytes: number): void {
    for (const s of EVENT_LOG_STATUSES) this.eventLogStatus.set({ log, status: s }, s === status ? 1 : 0);
    this.eventLogBytes.set({ log }, bytes);
  }

  /** Records one finished RPC. */
  observeRpc(method: string, code: string, seconds: number): void {
    this.rpcRequests.inc({ method, code });
    this.rpcDuration.observe({ method }, seconds);
  }

  observeTpmCommand(command: string, seconds: number): void {
    this.tpmCommandDuration.observe({ command }, seconds);
  }

  countTpmReclaimed(kind: 'object' | 'session', count: number): void {
    this.tpmReclaimed.inc({ kind }, count);
  }

  countTpmExhausted(kind: 'object' | 'session'): void {
    this.tpmExhausted.inc({ kind });
  }

  setTpmQueueDepth(depth: number): void {
    this.tpmQueueDepth.set(depth);
  }

  observeTpmQueueWait(method: string, seconds: number): void {
    this.tpmQueueWait.observe({ method }, seconds);
  }

  countTpmQueueRejected(reason: 'full' | 'cancelled'): void {
    this.tpmQueueRejected.inc({ reason });
  }

  /** Prometheus text exposition of every metric. */
  render(): string {
    return [
      this.rpcRequests.render(),
      this.rpcDuration.render(),
      this.tpmCommandDuration.render(),
      this.authFailures.render(),
      this.tpmReclaimed.render(),
      this.tpmExhausted.render(),
      this.tpmQueueDepth.render(),
      this.tpmQueueWait.render(),
      this.tpmQueueRejected.render(),
      this.eventLogStatus.render(),
      this.eventLogBytes.render(),
      '# HELP tpmds_start_time_seconds Start time of the attestor since the Unix epoch.\n' +
        '# TYPE tpmds_start_time_seconds gauge\n' +
        `tpmds_start_time_seconds ${this.#startTime}\n`,
    ].join('');
  }
}
