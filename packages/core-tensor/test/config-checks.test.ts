import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  GraphBuilder,
  PRIORITY,
  TensorpressError,
  checkCompression,
  checkScopeNames,
  closestMatch,
  compress,
  createBuilders,
  defineController,
  didYouMean,
  nodePattern,
  nodePatternError,
  parsePipelineConfig,
  useBackend,
  type AlgorithmDefinition,
  type CompressionBuilder,
  type EntryLocation,
  type Graph,
  type StackingRule,
} from '@tensorpress/core-tensor';
import { errorOf, looseObjects } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

beforeAll(async () => {
  await useBackend('cpu');
});

const schema = z
  .object({
    criterion: z.enum(['l1', 'l2', 'fpgm']).default('l1'),
    alphaInit: z.union([z.number().positive(), z.literal('range')]).default('range'),
    schedule: z.object({ steps: z.number().int().positive() }).strict().optional(),
  })
  .strict();

const PRUNER: StackingRule = { group: 'pruner', groupAction: 'remove filters' };
const QUANTIZER: StackingRule = { group: 'quantizer', groupAction: 'quantize weights', after: ['pruner', 'sparsifier'] };

/** Every `create` call's location, newest last. */
const locations: (EntryLocation | undefined)[] = [];

function builderOf(algorithm: string, priority: number, stacking?: StackingRule, register: CompressionBuilder['register'] = () => undefined): CompressionBuilder {
  return { algorithm, priority, ...(stacking ? { stacking } : {}), register, build: () => defineController(algorithm) };
}

function def(algorithm: string, priority: number, stacking?: StackingRule): AlgorithmDefinition<z.output<typeof schema>> {
  return {
    algorithm,
    version: 1,
    packageName: '@tensorpress/test',
    description: 'test',
    schema,
    ...(stacking ? { stacking } : {}),
    create: (_config, location) => {
      locations.push(location);
      return builderOf(algorithm, priority, stacking);
    },
  };
}

const defs = [
  def('filter_pruning', PRIORITY.pruning, PRUNER),
  def('quantization', PRIORITY.quantization, QUANTIZER),
  def('dorefa', PRIORITY.quantization, QUANTIZER),
  def('distill', 400),
];

function messageOf(fn: () => unknown): string {
  const e = errorOf(fn);
  expect(e).toBeInstanceOf(ConfigError);
  return e.message;
}

const parse = (value: unknown, hints?: Record<string, string>): unknown => parsePipelineConfig(value, defs, hints ? { hints } : {});

describe('parsePipelineConfig: unknown keys', () => {
  it('refuses a misspelt key of a compression entry with its path and the key it resembles', () => {
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', parms: { weights: { bits: 4 } } }] }))).toBe(
      '$.compression[0].parms: unknown key "parms"; did you mean "params"?',
    );
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', ignored_scopes: ['fc'] }] }))).toBe(
      '$.compression[0].ignored_scopes: unknown key "ignored_scopes"; did you mean "ignoredScopes"?',
    );
    expect(messageOf(() => parse({ compression: { algorithm: 'quantization', targetscopes: ['fc'] } }))).toBe(
      '$.compression.targetscopes: unknown key "targetscopes"; did you mean "targetScopes"?',
    );
  });

  it('suggests at every level, lists the allowed keys when nothing is close, and names the other unknown keys', () => {
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { Criterion: 'l1' } }] }))).toBe(
      '$.compression[0].params.Criterion: unknown key "Criterion"; did you mean "criterion"?',
    );
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { schedule: { step: 3 } } }] }))).toMatch(
      /^\$\.compression\[0\]\.params\.schedule\.step: unknown key "step"; did you mean "steps"\?$/,
    );
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { zzz: 1, yyy: 2 } }] }))).toBe(
      '$.compression[0].params.zzz: unknown key "zzz"; allowed here: criterion, alphaInit, schedule (also unknown: "yyy")',
    );
    expect(messageOf(() => parse({ training: { learning_rate: 0.1 }, compression: [] }))).toMatch(/^\$\.training\.learning_rate: .*did you mean "learningRate"\?$/);
    // A key already present is no suggestion for its misspelt twin.
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: {}, parms: {} }] }))).not.toMatch(/did you mean/);
  });

  it('says which key is missing, and prefers an unknown key (the typo) over the missing one', () => {
    expect(messageOf(() => parse({ compression: [{ version: 1 }] }))).toBe('$.compression[0].algorithm: missing: expected string');
    expect(messageOf(() => parse({ compresion: [] }))).toBe('$.compresion: unknown key "compresion"; did you mean "compression"?');
  });

  it('refuses a key written twice in JSON text (JSON.parse would keep only the last)', () => {
    const text = '{"compression": [{"algorithm": "quantization", "params": {"criterion": "l2", "criterion": "l1"}}]}';
    expect(messageOf(() => parse(text))).toBe('$.compression[0].params.criterion: key "criterion" is written twice in one object; JSON keeps only the last, so remove one');
    expect(messageOf(() => parse('{"compression": [], "compression": [{"algorithm": "quantization"}]}'))).toMatch(/^\$\.compression: key "compression" is written twice/);
    // Escapes and look-alike values are not keys.
    expect(() => parse('{"compression": [{"algorithm": "quantization", "ignoredScopes": ["a\\"b", "algorithm"]}]}')).not.toThrow();
  });

  it('refuses nesting no config needs, in text and in objects (cycles included), without recursion', () => {
    const deep = `{"compression": [{"algorithm": "quantization", "params": ${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}]}`;
    expect(messageOf(() => parse(deep))).toMatch(/nested deeper than 32 levels/);
    let obj: Record<string, unknown> = {};
    const root = obj;
    for (let i = 0; i < 5000; i++) obj = obj['a'] = {};
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: root }] }))).toMatch(/nested deeper than 32 levels/);
    const cyclic: Record<string, unknown> = { algorithm: 'quantization' };
    cyclic['params'] = cyclic;
    expect(messageOf(() => parse({ compression: [cyclic] }))).toMatch(/nested deeper/);
  });
});

describe('parsePipelineConfig: names and values', () => {
  it('suggests the algorithm a misspelt name resembles, installed or not', () => {
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantisation' }] }))).toBe(
      '$.compression[0].algorithm: unknown algorithm "quantisation"; did you mean "quantization"?; known algorithms: distill, dorefa, filter_pruning, quantization',
    );
    expect(messageOf(() => parse({ compression: [{ algorithm: 'magnitude_sparsty' }] }, { magnitude_sparsity: '@tensorpress/sparsity' }))).toMatch(
      /unknown algorithm "magnitude_sparsty"; did you mean "magnitude_sparsity" \(provided by @tensorpress\/sparsity\)\?/,
    );
  });

  it('suggests the enum or literal value a misspelt one resembles', () => {
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { criterion: 'fpmg' } }] }))).toBe(
      '$.compression[0].params.criterion: expected one of "l1", "l2", "fpgm", got "fpmg"; did you mean "fpgm"?',
    );
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { alphaInit: 'rnge' } }] }))).toBe(
      '$.compression[0].params.alphaInit: expected a number or "range", got "rnge"; did you mean "range"?',
    );
    expect(messageOf(() => parse({ training: { optimizer: 'Adam' }, compression: [] }))).toMatch(/did you mean "adam"\?$/);
    // Two equally close values: no guess.
    expect(messageOf(() => parse({ compression: [{ algorithm: 'quantization', params: { criterion: 'l7' } }] }))).not.toMatch(/did you mean/);
  });

  it('bounds training settings, naming the value given', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ learningRate: 1e308 }, /^\$\.training\.learningRate: Too big: .*10, got 1e\+308$/],
      [{ learningRate: 0 }, /^\$\.training\.learningRate: /],
      [{ learningRate: Number.NaN }, /^\$\.training\.learningRate: expected number, got NaN$/],
      [{ epochs: 20_000 }, /^\$\.training\.epochs: Too big/],
      [{ epochs: 1.5 }, /^\$\.training\.epochs: /],
      [{ batchSize: 100_000 }, /^\$\.training\.batchSize: Too big/],
      [{ batchSize: '64' }, /^\$\.training\.batchSize: expected number, got string$/],
    ];
    for (const [training, re] of cases) expect(messageOf(() => parse({ training, compression: [] }))).toMatch(re);
    expect(() => parse({ training: { learningRate: 10, epochs: 10_000, batchSize: 65_536 }, compression: [] })).not.toThrow();
  });
});

describe('parsePipelineConfig: stacking', () => {
  const entries = (...names: string[]): unknown => ({ compression: names.map((algorithm) => ({ algorithm })) });

  it('refuses two algorithms of one exclusive group, naming both paths and why', () => {
    expect(messageOf(() => parse(entries('quantization', 'dorefa')))).toBe(
      '$.compression[1].algorithm: "dorefa" cannot be stacked with "quantization" ($.compression[0]): both quantize weights; use one quantizer per pipeline',
    );
    expect(messageOf(() => parse(entries('filter_pruning', 'quantization', 'distill', 'dorefa')))).toMatch(/^\$\.compression\[3\]\.algorithm: "dorefa" cannot be stacked with "quantization" \(\$\.compression\[1\]\)/);
  });

  it('refuses an algorithm listed twice', () => {
    expect(messageOf(() => parse(entries('distill', 'distill')))).toBe(
      '$.compression[1].algorithm: "distill" appears twice (also at $.compression[0]); merge its settings into one entry',
    );
  });

  it('refuses an order its rules forbid and accepts the declared one', () => {
    expect(messageOf(() => parse(entries('quantization', 'filter_pruning')))).toBe(
      '$.compression[0].algorithm: "quantization" must come after "filter_pruning" ($.compression[1]): "quantization" runs after every pruner algorithm; list "filter_pruning" first',
    );
    expect(() => parse(entries('filter_pruning', 'quantization', 'distill'))).not.toThrow();
    expect(() => parse(entries('distill', 'filter_pruning', 'quantization'))).not.toThrow();
  });
});

describe('createBuilders', () => {
  it('tells each builder the JSON path of its entry (single-object form included)', () => {
    locations.length = 0;
    createBuilders(parsePipelineConfig(entries2(), defs), defs);
    expect(locations).toEqual([{ path: '$.compression[0]' }, { path: '$.compression[1]' }]);
    locations.length = 0;
    createBuilders(parsePipelineConfig({ compression: { algorithm: 'distill' } }, defs), defs);
    expect(locations).toEqual([{ path: '$.compression' }]);
    // A config built by hand (no parse) gets the array form.
    locations.length = 0;
    createBuilders({ compression: [{ algorithm: 'distill', version: 1, params: {}, ignoredScopes: [], targetScopes: [] }] }, defs);
    expect(locations).toEqual([{ path: '$.compression[0]' }]);
  });
});

function entries2(): unknown {
  return { compression: [{ algorithm: 'filter_pruning' }, { algorithm: 'quantization' }] };
}

function tinyGraph(): Graph {
  const b = new GraphBuilder({ seed: 1 });
  const h = b.relu(b.conv(b.input('input', [null, 4, 4, 1]), { filters: 2, kernel: 3, padding: 'same', name: 'conv1' }), 'relu1');
  b.output(b.dense(b.flatten(h, 'flat'), 2, { name: 'fc' }));
  return b.build();
}

describe('compress: stacking', () => {
  it('refuses two builders of one exclusive group (no TypeError at strip later)', () => {
    const e = errorOf(() => compress(tinyGraph(), [builderOf('quantization', 300, QUANTIZER), builderOf('dorefa', 300, QUANTIZER)]));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toBe('one pipeline: "dorefa" cannot be stacked with "quantization": both quantize weights; use one quantizer per pipeline');
  });

  it('applies builders in priority order whatever the argument order, and refuses priorities that contradict a rule', () => {
    const ctrl = compress(tinyGraph(), [builderOf('quantization', 300, QUANTIZER), builderOf('filter_pruning', 100, PRUNER)]);
    expect(ctrl.controllers.map((c) => c.algorithm)).toEqual(['filter_pruning', 'quantization']);
    ctrl.dispose();
    const e = errorOf(() => compress(tinyGraph(), [builderOf('quantization', 50, QUANTIZER), builderOf('filter_pruning', 100, PRUNER)]));
    expect(e.message).toMatch(/"quantization" \(priority 50\) must run after "filter_pruning" \(priority 100\)/);
  });
});

describe('checkCompression', () => {
  it('applies and frees the pipeline, passing on what a builder finds on the graph', () => {
    const before = tf.memory().numTensors;
    checkCompression(tinyGraph(), [builderOf('distill', 400)]);
    expect(tf.memory().numTensors).toBe(before);
    const failing = builderOf('test_plan', 300, undefined, (graph) => {
      throw new ConfigError('$.compression[0].params.plan[0].node', `"conv9" names no node of the graph${didYouMean('conv9', graph.nodes.map((n) => n.name))}`);
    });
    expect(messageOf(() => checkCompression(tinyGraph(), [failing]))).toBe('$.compression[0].params.plan[0].node: "conv9" names no node of the graph; did you mean "conv1"?');
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('closestMatch', () => {
  it('ignores case, _ and -, allows a few edits by length, and refuses ties', () => {
    expect(closestMatch('ignored_scopes', ['ignoredScopes', 'targetScopes'])).toBe('ignoredScopes');
    expect(closestMatch('PERCHANNEL', ['perChannel', 'bits'])).toBe('perChannel');
    expect(closestMatch('parms', ['params', 'algorithm'])).toBe('params');
    expect(closestMatch('flopsReductoin', ['flopsReduction', 'ratio'])).toBe('flopsReduction');
    expect(closestMatch('xyz', ['params', 'version'])).toBeUndefined();
    expect(closestMatch('l3', ['l1', 'l2'])).toBeUndefined();
    expect(closestMatch('a'.repeat(10_000), ['a'])).toBeUndefined();
    expect(didYouMean('quantisation', ['quantization'])).toBe('; did you mean "quantization"?');
    expect(didYouMean('zzz', ['quantization'])).toBe('');
  });
});

describe('node patterns and scope names', () => {
  it('nodePattern matches names and {re} expressions; a bad expression is a ConfigError at the path', () => {
    expect(['conv1', 'conv2', 'fc'].filter(nodePattern('{re}conv\\d', '$.x'))).toEqual(['conv1', 'conv2']);
    expect(messageOf(() => nodePattern('{re}((', '$.plan[0].node'))).toMatch(/^\$\.plan\[0\]\.node: invalid regular expression "\(\(": /);
    expect(nodePatternError('{re}[')).toMatch(/^invalid regular expression/);
    expect(nodePatternError('[')).toBeUndefined();
  });

  it('checkScopeNames refuses a plain name that names no node, with the closest; {re} may match nothing', () => {
    const names = tinyGraph().nodes.map((n) => n.name);
    expect(() => checkScopeNames({ ignoredScopes: ['fc', '{re}nothing.*'], targetScopes: ['conv1'] }, names, '$.compression[0]')).not.toThrow();
    expect(messageOf(() => checkScopeNames({ ignoredScopes: ['fc'], targetScopes: ['conv_1'] }, names, '$.compression[0]'))).toBe(
      '$.compression[0].targetScopes[0]: "conv_1" names no node of the graph; did you mean "conv1"?',
    );
  });
});

describe('looseObjects (test-utils)', () => {
  it('finds every object of a schema that drops unknown keys', () => {
    const s = z
      .object({ a: z.object({ b: z.number() }).default({ b: 1 }), c: z.array(z.object({}).strict()), d: z.union([z.number(), z.object({ e: z.string() })]) })
      .strict();
    expect(looseObjects(s)).toEqual(['$.a', '$.d']);
    expect(looseObjects(schema)).toEqual([]);
  });
});

describe('ConfigError', () => {
  it('carries a specific code for what the config decides on a graph', () => {
    const e = new ConfigError('$.compression[0].params.flopsReduction', 'cannot be reached', {}, 'TARGET_UNREACHABLE');
    expect(e).toBeInstanceOf(TensorpressError);
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.path).toBe('$.compression[0].params.flopsReduction');
  });
});
