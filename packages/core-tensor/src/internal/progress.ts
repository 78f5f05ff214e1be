/**
 * Progress output of fit/evaluate: one summary line per pass (an epoch, or evaluate's pass) on
 * standard output, or a display the caller supplies (a {@link ProgressReporter}; the CLI's terminal
 * bar is one). Core draws no bar itself: it runs in browsers too, and a terminal UI is the
 * application's to choose.
 */

/** `true`: one line per pass on standard output; `'auto'`: those lines on an interactive terminal only; `false`: nothing. */
export type ProgressMode = boolean | 'auto';

/**
 * A progress display for fit and evaluate, passed as their `progress` option. Each pass over the
 * data calls `start`, `update` after every step, then `end` with the pass's summary line; `end()`
 * comes once more, without a line, whenever the pass is left (after the summary, or on an error).
 */
export interface ProgressReporter {
  /** A new pass (`label`: `epoch 1/3`, `evaluate`) of `total` steps; a resumed epoch is updated to its step right away. */
  start(label: string, total: number): void | Promise<void>;
  /**
   * Steps done so far, and a short status (`loss 0.2134 acc 0.9300`) where the running totals were
   * read (every 20 steps and at the end of fit's epochs). The loop then yields to the event loop,
   * so the display can redraw.
   */
  update(done: number, status?: string): void;
  /** Ends the pass; `line` is its summary (the loop gives it to `log` too). */
  end(line?: string): void;
}

/** What fit/evaluate drive: a reporter, and whether it wants per-step updates. */
export interface Progress extends ProgressReporter {
  /** True for a caller's display: then the loop updates it after every step and yields to the event loop. */
  readonly interactive: boolean;
}

interface WritableLike {
  isTTY?: boolean;
  write(s: string): unknown;
}

/** Makes the progress of a pass from fit's or evaluate's `progress` option; `log` receives every summary line whatever the option. */
export function createProgress(option: ProgressMode | ProgressReporter, log?: (line: string) => void): Progress {
  const display = typeof option === 'object' ? option : undefined;
  const out = (globalThis as { process?: { stdout?: WritableLike } }).process?.stdout;
  const print = display === undefined && out !== undefined && (option === true || (option === 'auto' && out.isTTY === true));
  return {
    interactive: display !== undefined,
    async start(label, total) {
      await display?.start(label, total);
    },
    update(done, status) {
      display?.update(done, status);
    },
    end(line) {
      display?.end(line);
      if (line === undefined) return;
      if (log) log(line);
      if (print) out!.write(`${line}\n`);
    },
  };
}
