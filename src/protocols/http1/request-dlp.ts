// DLP for one request (an HTTP/1 exchange, an HTTP/2 stream): turns scanner hits into alerts and,
// when a hit must cut the exchange, the decision that cuts it. The enforcers own the bytes; this
// owns what a hit means:
// - A rule with a `dlp` matcher naming the sensor that hit is looked for first (the request is
//   decided again with the sensors that hit as facts: first match wins, as always); when such a
//   rule decides, its action counts (deny: cut under protect, would-deny otherwise).
// - Else the config's `dlp.action`: block cuts under protect (rule id `dlp:<sensor>`, so the 403
//   names the sensor), monitor/learn record would-deny; alert records an alert only.
// - A body that cannot be decoded (unknown coding, broken framing, a decompression bomb) could
//   hide anything: where a hit would block, it blocks (fail closed, rule `dlp:undecodable`);
//   otherwise the request record says it was not scanned.
import type { DlpEngine, DlpHit, DlpScope } from '../../content/dlp/index.js';
import type { CompiledPolicy, Decision, FlowFacts } from '../../policy/index.js';
import type { DlpAlert } from '../../enforcement/types.js';

/** Alerts written per request at most; further hits are counted in the request record. */
const MAX_ALERTS_PER_REQUEST = 8;

export class RequestDlp {
  private readonly sensors: string[] = [];
  private alerts = 0;
  /** The decision that cut (or would cut) the exchange, once there is one. */
  cut: Decision | null = null;

  constructor(
    readonly engine: DlpEngine,
    readonly scope: DlpScope,
    private readonly policy: CompiledPolicy,
    private readonly facts: FlowFacts,
    private readonly protocol: string,
    /** The request record's l7 (alerts carry it; truncation and hit counts are added to it). */
    readonly l7: Record<string, unknown>,
    /** Where alerts go (the enforcer turns them into `dlp` ops). */
    private readonly emit: (alert: DlpAlert) => void,
  ) {}

  /**
   * A hit could cut this exchange (protect mode, and `action: block` or a rule naming sensors):
   * only then are bytes that may begin a value held back (the hold is pointless latency otherwise).
   */
  get mayCut(): boolean {
    return this.policy.mode === 'protect' && (this.engine.action === 'block' || this.policy.dlpSensors.length > 0);
  }

  /** Handles the hits of one scan step; returns a decision that denies (under protect) when the exchange must be cut now. */
  onHits(hits: readonly DlpHit[]): Decision | null {
    let cutNow: Decision | null = null;
    for (const hit of hits) {
      const decision = this.decide(hit);
      if (decision === null) continue;
      this.l7.dlpHits = ((this.l7.dlpHits as number | undefined) ?? 0) + 1;
      const blocked = decision.action === 'deny';
      if (this.alerts < MAX_ALERTS_PER_REQUEST) {
        this.alerts++;
        this.emit({ protocol: this.protocol, l7: { ...this.l7 }, hit, decision, blocked });
      }
      if (decision.verdict !== 'allowed' && this.cut === null) this.cut = decision;
      if (blocked && cutNow === null) cutNow = decision;
    }
    return cutNow;
  }

  /** Records that the body was scanned only in part (the byte budget). */
  truncated(where: string, scanned: number): void {
    this.l7.dlpTruncated = { where, scannedBytes: scanned };
  }

  private decide(hit: DlpHit): Decision | null {
    const policy = this.policy;
    const enforce = policy.mode === 'protect';
    if (hit.sensor === 'undecodable') {
      const wouldBlock = this.engine.action === 'block' || policy.dlpSensors.length > 0;
      if (!wouldBlock) {
        this.l7.dlpUnscanned = hit.sample;
        return null;
      }
      return { action: enforce ? 'deny' : 'allow', verdict: enforce ? 'denied' : 'would-deny', ruleId: 'dlp:undecodable', policy: policy.hash, log: true, tier: 'default' };
    }
    if (!this.sensors.includes(hit.sensor)) this.sensors.push(hit.sensor);
    if (policy.dlpSensors.includes(hit.sensor)) {
      const l7 = { ...this.facts.l7, dlp: { sensors: this.sensors } };
      const decision = policy.decide({ ...this.facts, l7 });
      // Only a rule that names a sensor decides on content; any other rule decided already.
      if (decision.dlp !== undefined && decision.dlp.includes(hit.sensor)) return decision;
    }
    if (!this.scope.names.has(hit.sensor) || !this.engine.settings.sensors.includes(hit.sensor)) {
      // Scanned only for a rule's matcher, and no such rule matched: not an alert of the config's.
      return null;
    }
    if (this.engine.action === 'block') {
      return { action: enforce ? 'deny' : 'allow', verdict: enforce ? 'denied' : 'would-deny', ruleId: `dlp:${hit.sensor}`, policy: policy.hash, log: true, tier: 'default' };
    }
    return { action: 'allow', verdict: 'allowed', ruleId: `dlp:${hit.sensor}`, policy: policy.hash, log: true, tier: 'default' };
  }
}
