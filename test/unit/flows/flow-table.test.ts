// The table `sidewall observe` and `npm run demo` print: it fits the terminal it is shown on
// (80 columns too), colours verdicts only when asked, and prints uncut lines into a pipe.
import { describe, expect, it } from 'vitest';
import { flowTableHeader, flowTableRow, terminalTableOptions } from '../../../src/flows/flow-table.js';
import type { FlowRecord } from '../../../src/flows/index.js';
import { draftFor } from './fixtures.js';

const records: FlowRecord[] = Array.from({ length: 8 }, (_, i) => ({ ...draftFor(i), seq: i, time: '2026-12-03T13:20:01.123Z' }) as FlowRecord);
const longRecord: FlowRecord = {
  ...records[0]!,
  src: { ip: 'fd00:1234:5678:9abc::1', port: 65535, workload: { namespace: 'a-rather-long-namespace', pod: 'shop-7d9f8c6b5d-x1x1x', labels: {} } },
  ruleId: 'a-very-long-rule-identifier-indeed',
};
// eslint-disable-next-line no-control-regex
const visible = (line: string): string => line.replace(/\x1b\[[0-9;]*m/g, '');

describe('flow table', () => {
  for (const width of [80, 100, 120, 200]) {
    it(`fits ${width} columns, header and rows`, () => {
      expect(flowTableHeader({ width }).length).toBeLessThanOrEqual(width);
      for (const record of [...records, longRecord]) {
        const line = visible(flowTableRow(record, { width, color: true }));
        expect(line.length, line).toBeLessThanOrEqual(width);
      }
    });
  }

  it('keeps the columns aligned at 80 columns, with or without colour', () => {
    const header = flowTableHeader({ width: 80 });
    const verdictAt = header.indexOf('VERDICT');
    for (const record of records) {
      const plain = flowTableRow(record, { width: 80 });
      expect(visible(flowTableRow(record, { width: 80, color: true }))).toBe(plain);
      expect(plain.slice(verdictAt, verdictAt + 7).trim()).toMatch(/^!?(allowed|DENIED|WOULD-D)$/);
    }
  });

  it('colours verdicts only with color, and never the plain text', () => {
    const denied = records[1]!;
    expect(flowTableRow(denied, { width: 80, color: true })).toContain('\x1b[31mDENIED');
    expect(flowTableRow(denied, { width: 80 })).not.toContain('\x1b');
    expect(flowTableRow(denied)).not.toContain('\x1b');
  });

  it('cuts nothing without a width (a pipe gets the whole line)', () => {
    const line = flowTableRow(longRecord);
    expect(line).toContain('a-rather-long-namespace/shop-7d9f8c6b5d-x1x1x:65535');
    expect(line).toContain('a-very-long-rule-identifier-indeed');
  });

  it('takes width and colour from a terminal, honours NO_COLOR, and nothing from a pipe', () => {
    const tty = { isTTY: true, columns: 80 };
    expect(terminalTableOptions(tty, undefined, {})).toEqual({ width: 80, color: true });
    expect(terminalTableOptions(tty, undefined, { NO_COLOR: '1' })).toEqual({ width: 80 });
    expect(terminalTableOptions(tty, undefined, { NO_COLOR: '' })).toEqual({ width: 80, color: true });
    expect(terminalTableOptions({ isTTY: false }, undefined, {})).toEqual({});
    // `npm run demo | tee log`: stdout is the pipe, the terminal is on stderr.
    expect(terminalTableOptions({ isTTY: false }, tty, {})).toEqual({ width: 80 });
    expect(terminalTableOptions({ isTTY: false }, { isTTY: false }, { COLUMNS: '100' })).toEqual({ width: 100 });
  });
});
