/**
 * The CLI's progress bars: core-tensor's fit/evaluate print one line per pass, and take a
 * `ProgressReporter` for anything richer. On an interactive terminal the CLI passes a cli-progress
 * bar, which the pass's summary line replaces when it ends. cli-progress is a terminal UI library,
 * so it lives here, in the Node-only application, not in the browser-capable core.
 */
import type { ProgressMode, ProgressReporter } from '@tensorpress/core-tensor';

interface BarLike {
  start(total: number, start: number, payload?: object): void;
  update(value: number, payload?: object): void;
  stop(): void;
}

/** The standard output the bar draws on (a parameter for tests). */
export interface TerminalLike {
  isTTY?: boolean;
  write(s: string): unknown;
}

/**
 * fit's and evaluate's `progress` for a CLI command: with a mode other than `false` on an
 * interactive terminal, a bar per pass (`epoch 1/3 [████░░] 60/125 loss 0.2134 acc 0.9300 eta 4s`)
 * and its summary line in its place at the end; otherwise the mode itself (core prints one line
 * per pass for `true`, nothing for `false`).
 */
export function terminalProgress(mode: ProgressMode, out: TerminalLike = process.stdout): ProgressMode | ProgressReporter {
  if (mode === false || out.isTTY !== true) return mode;
  let current: BarLike | undefined;
  return {
    async start(label, total) {
      // Loaded on first use: commands that never train or evaluate do not load it.
      const mod = (await import('cli-progress')) as unknown as { default?: typeof import('cli-progress') } & typeof import('cli-progress');
      const cp = mod.default ?? mod;
      current = new cp.SingleBar(
        {
          format: `${label} [{bar}] {value}/{total} {status} eta {eta_formatted}`,
          barsize: 24,
          hideCursor: true,
          clearOnComplete: true,
          stream: out as NodeJS.WriteStream,
          etaBuffer: 50,
        },
        cp.Presets.shades_classic,
      );
      current.start(total, 0, { status: '' });
    },
    update(done, status) {
      current?.update(done, status === undefined ? undefined : { status });
    },
    end(line) {
      current?.stop();
      current = undefined;
      if (line !== undefined) out.write(`${line}\n`);
    },
  };
}
