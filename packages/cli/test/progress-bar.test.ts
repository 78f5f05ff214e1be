import { describe, expect, it } from 'vitest';
import { terminalProgress, type TerminalLike } from '../src/internal/progress-bar.js';

function terminal(isTTY: boolean): TerminalLike & { text: () => string } {
  const chunks: string[] = [];
  return {
    isTTY,
    write: (s: string) => chunks.push(s),
    // cli-progress moves the cursor on a TTY stream; a plain recorder just keeps what it wrote.
    cursorTo: () => true,
    clearLine: () => true,
    moveCursor: () => true,
    text: () => chunks.join(''),
  } as TerminalLike & { text: () => string };
}

describe('terminalProgress', () => {
  it('leaves the mode to core off a terminal, and when progress is off', () => {
    expect(terminalProgress(true, terminal(false))).toBe(true);
    expect(terminalProgress('auto', terminal(false))).toBe('auto');
    expect(terminalProgress(false, terminal(true))).toBe(false);
  });

  it('draws a bar per pass on a terminal and writes the summary line in its place', async () => {
    const out = terminal(true);
    const reporter = terminalProgress(true, out);
    if (typeof reporter !== 'object') return expect.fail('expected a reporter on a terminal');
    await reporter.start('epoch 1/2', 4);
    reporter.update(2, 'loss 0.5000 acc 0.7500');
    reporter.update(4);
    reporter.end('epoch 1/2 loss 0.4000 acc 0.8000 0.1 s');
    reporter.end();
    expect(out.text()).toMatch(/epoch 1\/2 \[[^\]]*\] \d\/4/);
    expect(out.text().endsWith('epoch 1/2 loss 0.4000 acc 0.8000 0.1 s\n')).toBe(true);
  });
});
