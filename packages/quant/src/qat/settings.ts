import { entryPaths, scopeFilter, type EntryLocation, type Scopes } from '@tensorpress/core-tensor';
import type { CalibrationMethod, RangeInitMethod } from '../calibration.js';
import type { UnifiedScales } from '../placement.js';

/** Scopes of an algorithm entry (core's `Scopes`: ignored and target node names or `{re}` patterns). */
export type ScopeOptions = Scopes;

/** Per-layer bit widths (mixed-precision hands one over). */
export interface BitsPlanEntry {
  /** Node name, or `{re}<regex>` for all matching nodes. */
  readonly node: string;
  readonly weightBits?: number;
  /** Bits of the activations this node reads. */
  readonly activationBits?: number;
}

/** What every QAT method shares: bits, placement, range initialisation. */
export interface QatSettings {
  readonly weightBits: number;
  readonly activationBits: number;
  readonly perChannel: boolean;
  readonly quantizeActivations: boolean;
  readonly quantizeInputs: boolean;
  /** int32 biases in the stripped graph (default true). */
  readonly quantizeBias?: boolean;
  readonly plan: readonly BitsPlanEntry[];
  readonly rangeInit: {
    readonly type: RangeInitMethod | CalibrationMethod;
    readonly samples: number;
    readonly minPercentile?: number;
    readonly maxPercentile?: number;
    /** 'kl': the percentile of |x| the threshold may not go below (CollectorOptions.klFloorPercentile). */
    readonly klFloorPercentile?: number;
  };
  readonly inScope: (node: string) => boolean;
  /** The scopes behind `inScope`: their plain node names are checked against the graph. */
  readonly scopes: Scopes;
  /** JSON paths of the params and of the config entry, for errors found on the graph (see core's `entryPaths`). */
  readonly paths: { readonly params: string; readonly entry: string };
  /** Ops whose activation inputs get quantizers (default: see placeQuantizers). */
  readonly activationOps?: ReadonlySet<string>;
  /** Which ops' inputs share one quantizer (default `add_concat`). */
  readonly unifiedScales?: UnifiedScales;
}

/**
 * Settings every QAT method derives from its parameters (its bits, the `qatCommonSchema` part),
 * its scopes and where its config entry is (`location`, set by the definition's `create`).
 */
export function qatSettings(
  params: {
    weights: { bits: number; perChannel: boolean };
    activations: { bits: number };
    plan: readonly BitsPlanEntry[];
    initializer: { range: { type: RangeInitMethod; numInitSamples: number; minPercentile: number; maxPercentile: number } };
    quantizeInputs: boolean;
    quantizeBias: boolean;
    unifiedScales: UnifiedScales;
  },
  scopes: ScopeOptions,
  location?: EntryLocation,
): QatSettings {
  const r = params.initializer.range;
  const paths = entryPaths(location);
  return {
    weightBits: params.weights.bits,
    activationBits: params.activations.bits,
    perChannel: params.weights.perChannel,
    quantizeActivations: true,
    quantizeInputs: params.quantizeInputs,
    quantizeBias: params.quantizeBias,
    unifiedScales: params.unifiedScales,
    plan: params.plan,
    rangeInit: { type: r.type, samples: r.numInitSamples, minPercentile: r.minPercentile, maxPercentile: r.maxPercentile },
    inScope: scopeFilter(scopes, paths.entry),
    scopes,
    paths,
  };
}
