// Rules engine throughput: decisions per second for 10 vs 1,000 rules.
// Run: npx tsc -p tsconfig.json && node dist/perf/policy-bench.js
// (tsc emits even when other folders have type errors; only this file and src/policy matter.)
//
// Scenarios:
// - "spread": rules over many ports, directions, CIDRs and identities, some with HTTP blocks;
//   flows hit rules near the end of the list or fall through to the default. This is the shape
//   the per-(direction, port) index is built for.
// - "same-port": every rule on port 80 with its own CIDR, the flow matching only the last one —
//   the index cannot help, so this is the linear worst case.

import { performance } from 'node:perf_hooks';
import { compilePolicy, type CompiledPolicy, type FlowFacts } from '../src/policy/index.js';

type Rule = Record<string, unknown>;

function spreadRules(count: number): Rule[] {
  const rules: Rule[] = [];
  for (let i = 0; i < count; i++) {
    const rule: Rule = { id: `r${i}`, action: i % 4 === 0 ? 'deny' : 'allow', direction: i % 2 === 0 ? 'egress' : 'ingress', ports: [2000 + i] };
    if (i % 3 === 0) rule.peer = { cidr: [`10.${(i >> 8) & 255}.${i & 255}.0/24`, `fd00:${i.toString(16)}::/64`] };
    else if (i % 3 === 1) rule.peer = { namespace: `ns-${i % 50}`, labels: { app: `app-${i}` } };
    if (i % 5 === 0) rule.http = { methods: ['GET', 'POST'], paths: [`/svc${i}/**`, '/health'], hosts: [`*.ns-${i % 50}.svc.cluster.local`] };
    rules.push(rule);
  }
  return rules;
}

function samePortRules(count: number): Rule[] {
  return Array.from({ length: count }, (_, i) => ({ id: `p${i}`, action: 'allow', ports: 80, peer: { cidr: `10.${(i >> 8) & 255}.${i & 255}.0/24` } }));
}

function compile(rules: Rule[]): CompiledPolicy {
  const result = compilePolicy({ clusterRules: [{ id: 'c-pass', action: 'pass' }], workloadRules: rules, defaultAction: 'deny', mode: 'protect' });
  if (!('policy' in result)) throw new Error(JSON.stringify(result.issues.slice(0, 3)));
  return result.policy;
}

/** Flows aimed at the last rules of a spread set of `count`, plus misses. */
function spreadFlows(count: number): FlowFacts[] {
  const flows: FlowFacts[] = [];
  for (let k = 0; k < 32; k++) {
    // the same mix of rule kinds for both sizes: the last min(count, 30) rules, cycled
    const i = count - 1 - (k % Math.min(count, 30));
    const port = k % 8 === 7 ? 65000 : 2000 + i; // every 8th flow matches no rule
    const peer = { ip: `10.${(i >> 8) & 255}.${i & 255}.9`, port, workload: { namespace: `ns-${i % 50}`, labels: { app: `app-${i}` } } };
    const self = { ip: '10.200.0.1', port: 40000 + k };
    const direction = i % 2 === 0 ? 'egress' : 'ingress';
    const facts: FlowFacts = direction === 'egress' ? { direction, src: self, dst: peer } : { direction, src: { ...peer, port: 50000 }, dst: { ...self, port } };
    facts.protocol = 'http';
    facts.l7 = { http: { method: 'GET', path: `/svc${i}/items/42?x=1`, host: `api.ns-${i % 50}.svc.cluster.local` } };
    flows.push(facts);
  }
  return flows;
}

function samePortFlows(count: number): FlowFacts[] {
  const i = count - 1;
  return [{ direction: 'egress', src: { ip: '10.200.0.1', port: 40000 }, dst: { ip: `10.${(i >> 8) & 255}.${i & 255}.9`, port: 80 } }];
}

function measure(label: string, policy: CompiledPolicy, flows: FlowFacts[], fn: 'decide' | 'decideConnection'): number {
  let sink = 0;
  const run = (iterations: number): void => {
    for (let n = 0; n < iterations; n++) {
      const facts = flows[n % flows.length]!;
      const d = fn === 'decide' ? policy.decide(facts) : policy.decideConnection(facts);
      if (d !== 'needs-l7' && d.action === 'deny') sink++;
    }
  };
  run(20_000); // warm up the JIT and the candidate cache
  let iterations = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < 400) {
    run(10_000);
    iterations += 10_000;
    elapsed = performance.now() - start;
  }
  const perSecond = (iterations / elapsed) * 1000;
  console.log(`${label.padEnd(44)} ${Math.round(perSecond).toLocaleString('en-US').padStart(12)} decisions/s  ${((elapsed * 1e6) / iterations).toFixed(0).padStart(6)} ns/decision`);
  if (sink < 0) console.log(sink); // keeps the results observable so the loop is not optimised away
  return perSecond;
}

console.log(`node ${process.version}, ${new Date().toISOString()}`);
const results: Record<string, number> = {};
for (const count of [10, 1000]) {
  const policy = compile(spreadRules(count));
  const flows = spreadFlows(count);
  results[`spread-decide-${count}`] = measure(`spread, ${count} rules, decide (L7)`, policy, flows, 'decide');
  results[`spread-conn-${count}`] = measure(`spread, ${count} rules, decideConnection`, policy, flows, 'decideConnection');
}
for (const count of [10, 1000]) {
  results[`same-${count}`] = measure(`same-port, ${count} rules, decide (worst case)`, compile(samePortRules(count)), samePortFlows(count), 'decide');
}
const compileStart = performance.now();
compile(spreadRules(1000));
console.log(`compile 1,000 rules: ${(performance.now() - compileStart).toFixed(1)} ms`);
console.log(`cost per decision, 1,000 rules / 10 rules: spread decide ${(results['spread-decide-10']! / results['spread-decide-1000']!).toFixed(2)}, spread decideConnection ${(results['spread-conn-10']! / results['spread-conn-1000']!).toFixed(2)}, same-port ${(results['same-10']! / results['same-1000']!).toFixed(0)}`);
