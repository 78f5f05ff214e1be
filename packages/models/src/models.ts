import { ConfigError, GraphBuilder, type Graph } from '@tensorpress/core-tensor';

/** Options shared by every reference model. */
export interface ReferenceModelOptions {
  /** Shape of one example, channels last. Default `[28, 28, 1]` (MNIST). The CNNs need `[h, w, c]`. */
  inputShape?: readonly number[];
  /** Number of classes (width of the logits). Default 10. */
  numClasses?: number;
  /** Seed of the weight initialisation. Default 0. */
  seed?: number;
  /** Multiplier of every hidden channel and unit count (rounded, at least 1). Default 1. */
  width?: number;
}

/** A function that builds a reference model as a graph whose single output is the logits. */
export type ReferenceModelFactory = (options?: ReferenceModelOptions) => Graph;

interface Resolved {
  shape: number[];
  classes: number;
  seed: number;
  ch: (n: number) => number;
}

function resolve(options: ReferenceModelOptions, model: string, needsImage: boolean): Resolved {
  const shape = [...(options.inputShape ?? [28, 28, 1])];
  if (shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new ConfigError('$.inputShape', `${model}: expected positive integers, got [${shape.join(', ')}]`);
  }
  if (needsImage && shape.length !== 3) {
    throw new ConfigError('$.inputShape', `${model}: expected an image shape [height, width, channels], got [${shape.join(', ')}]`);
  }
  const classes = options.numClasses ?? 10;
  if (!Number.isInteger(classes) || classes < 1) {
    throw new ConfigError('$.numClasses', `${model}: expected a positive integer, got ${classes}`);
  }
  const width = options.width ?? 1;
  if (!(Number.isFinite(width) && width > 0)) throw new ConfigError('$.width', `${model}: expected a positive number, got ${width}`);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) throw new ConfigError('$.seed', `${model}: expected an integer, got ${seed}`);
  return { shape, classes, seed, ch: (n) => Math.max(1, Math.round(n * width)) };
}

/**
 * Conv (no bias: the BN that follows has one) + BN + activation, named `<name>`, `<bn>`, `<act>`.
 * Returns the activation's output.
 */
function convBnAct(
  b: GraphBuilder,
  x: string,
  names: { conv: string; bn: string; act?: string },
  o: { filters: number; kernel: number; strides?: number; group?: number; act: 'relu' | 'relu6' | 'none' },
): string {
  let h = b.conv(x, {
    filters: o.filters,
    kernel: o.kernel,
    strides: o.strides ?? 1,
    padding: o.kernel > 1 ? 'same' : 'valid',
    group: o.group ?? 1,
    bias: false,
    name: names.conv,
  });
  h = b.batchNorm(h, { name: names.bn });
  if (o.act === 'relu') h = b.relu(h, names.act);
  else if (o.act === 'relu6') h = b.relu6(h, names.act);
  return h;
}

/**
 * A plain VGG-style CNN with batch normalisation:
 *
 * `conv1 3×3×32 + bn1 + relu1 → pool1 (max 2×2) → conv2 3×3×32 + bn2 + relu2 → pool2 →
 * conv3 3×3×64 + bn3 + relu3 → pool3 → flatten → fc1 128 + relu4 → fc2 (logits)`.
 *
 * On 28×28×1 inputs: 103,594 parameters (incl. BN running statistics) and ~3.0 M MACs per example.
 * conv1 has 32 filters rather than 16: with 16 the 3-epoch Fashion-MNIST accuracy fell just short of
 * the 91.5% target in a trial run (`npm run bench -- training` measures the current model).
 */
export function plainCnn(options: ReferenceModelOptions = {}): Graph {
  const { shape, classes, seed, ch } = resolve(options, 'plainCnn', true);
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...shape]);
  h = convBnAct(b, h, { conv: 'conv1', bn: 'bn1', act: 'relu1' }, { filters: ch(32), kernel: 3, act: 'relu' });
  h = b.maxPool(h, 2, { name: 'pool1' });
  h = convBnAct(b, h, { conv: 'conv2', bn: 'bn2', act: 'relu2' }, { filters: ch(32), kernel: 3, act: 'relu' });
  h = b.maxPool(h, 2, { name: 'pool2' });
  h = convBnAct(b, h, { conv: 'conv3', bn: 'bn3', act: 'relu3' }, { filters: ch(64), kernel: 3, act: 'relu' });
  h = b.maxPool(h, 2, { name: 'pool3' });
  h = b.flatten(h, 'flatten');
  h = b.relu(b.dense(h, ch(128), { name: 'fc1', init: 'he' }), 'relu4');
  h = b.dense(h, classes, { name: 'fc2' });
  b.output(h);
  return b.build();
}

/**
 * A small ResNet with batch normalisation, an identity block and two downsampling blocks whose
 * shortcut is a strided 1×1 conv + BN:
 *
 * `stem (conv 3×3×16 + bn + relu) → pool (max 2×2) →
 * block1 (conv1 3×3, bn1, relu1, conv2 3×3, bn2, add with the block input, relu) →
 * block2 (stride 2, 16→32, shortcut: block2.down 1×1 stride 2 + block2.down_bn) →
 * block3 (stride 2, 32→64, same shortcut) → gap → flatten → fc (logits)`.
 *
 * Node names are `stem.conv`, `block1.conv1`, `block2.down`, `block3.add`, `fc` ... On 28×28×1 inputs:
 * 78,426 parameters (77,754 trainable) and 2.64 M MACs per example.
 */
export function residualCnn(options: ReferenceModelOptions = {}): Graph {
  const { shape, classes, seed, ch } = resolve(options, 'residualCnn', true);
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...shape]);
  h = convBnAct(b, h, { conv: 'stem.conv', bn: 'stem.bn', act: 'stem.relu' }, { filters: ch(16), kernel: 3, act: 'relu' });
  h = b.maxPool(h, 2, { name: 'stem.pool' });
  const block = (x: string, name: string, filters: number, stride: number): string => {
    const cin = b.shape(x)[3];
    let y = convBnAct(b, x, { conv: `${name}.conv1`, bn: `${name}.bn1`, act: `${name}.relu1` }, { filters, kernel: 3, strides: stride, act: 'relu' });
    y = convBnAct(b, y, { conv: `${name}.conv2`, bn: `${name}.bn2` }, { filters, kernel: 3, act: 'none' });
    const shortcut =
      stride === 1 && cin === filters
        ? x
        : convBnAct(b, x, { conv: `${name}.down`, bn: `${name}.down_bn` }, { filters, kernel: 1, strides: stride, act: 'none' });
    return b.relu(b.add(y, shortcut, `${name}.add`), `${name}.relu`);
  };
  h = block(h, 'block1', ch(16), 1);
  h = block(h, 'block2', ch(32), 2);
  h = block(h, 'block3', ch(64), 2);
  h = b.globalAvgPool(h, 'gap');
  h = b.flatten(h, 'flatten');
  h = b.dense(h, classes, { name: 'fc' });
  b.output(h);
  return b.build();
}

/**
 * A MobileNet-style CNN (ReLU6 throughout):
 *
 * `stem (conv 3×3×16 stride 2 + bn + relu6) →
 * ds1 (depthwise-separable: dw 3×3 + bn + relu6, pw 1×1 16→24 + bn + relu6) →
 * ir1 (inverted residual, expansion 4: expand 1×1 24→96 + bn + relu6, dw 3×3 + bn + relu6,
 * project 1×1 96→24 + bn, add with the block input) →
 * ds2 (downsampling depthwise-separable: dw 3×3 stride 2 + bn + relu6, pw 1×1 24→64 + bn + relu6) →
 * head (conv 1×1 64→128 + bn + relu6) → gap → flatten → fc (logits)`.
 *
 * The 1×1 head widens the features the global average pool hands to the classifier, as
 * MobileNetV2's last conv does.
 *
 * Node names are `stem.conv`, `ds1.dw`, `ds1.pw`, `ir1.expand`, `ir1.dw`, `ir1.project`, `ir1.add`,
 * `ds2.dw`, `ds2.pw`, `head.conv`, `fc`; BN and activation nodes take their conv's name plus `_bn` /
 * `_relu` (`ds1.dw_bn`, `ir1.project_bn`; the stem's and head's are `stem.bn`, `stem.relu`, `head.bn`,
 * `head.relu`). On 28×28×1 inputs: 19,330 parameters (18,354 trainable) and 1.69 M MACs per example.
 */
export function mobileNetCnn(options: ReferenceModelOptions = {}): Graph {
  const { shape, classes, seed, ch } = resolve(options, 'mobileNetCnn', true);
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...shape]);
  h = convBnAct(b, h, { conv: 'stem.conv', bn: 'stem.bn', act: 'stem.relu' }, { filters: ch(16), kernel: 3, strides: 2, act: 'relu6' });
  const dw = (x: string, name: string, stride: number): string => {
    const c = b.shape(x)[3] as number;
    return convBnAct(b, x, { conv: `${name}.dw`, bn: `${name}.dw_bn`, act: `${name}.dw_relu` }, { filters: c, group: c, kernel: 3, strides: stride, act: 'relu6' });
  };
  const pw = (x: string, name: string, filters: number, act: 'relu6' | 'none'): string =>
    convBnAct(b, x, { conv: name, bn: `${name}_bn`, ...(act === 'none' ? {} : { act: `${name}_relu` }) }, { filters, kernel: 1, act });
  h = pw(dw(h, 'ds1', 1), 'ds1.pw', ch(24), 'relu6');
  const irIn = h;
  const c = b.shape(irIn)[3] as number;
  let y = pw(h, 'ir1.expand', 4 * c, 'relu6');
  y = dw(y, 'ir1', 1);
  y = pw(y, 'ir1.project', c, 'none');
  h = b.add(y, irIn, 'ir1.add');
  h = pw(dw(h, 'ds2', 2), 'ds2.pw', ch(64), 'relu6');
  h = convBnAct(b, h, { conv: 'head.conv', bn: 'head.bn', act: 'head.relu' }, { filters: ch(128), kernel: 1, act: 'relu6' });
  h = b.globalAvgPool(h, 'gap');
  h = b.flatten(h, 'flatten');
  h = b.dense(h, classes, { name: 'fc' });
  b.output(h);
  return b.build();
}

/**
 * A multilayer perceptron: `flatten → fc1 256 + relu1 → fc2 128 + relu2 → fc3 (logits)`.
 * Accepts any example shape (flattened). On 28×28×1 inputs: 235,146 parameters.
 */
export function mlp(options: ReferenceModelOptions = {}): Graph {
  const { shape, classes, seed, ch } = resolve(options, 'mlp', false);
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...shape]);
  h = b.flatten(h, 'flatten');
  h = b.relu(b.dense(h, ch(256), { name: 'fc1', init: 'he' }), 'relu1');
  h = b.relu(b.dense(h, ch(128), { name: 'fc2', init: 'he' }), 'relu2');
  h = b.dense(h, classes, { name: 'fc3' });
  b.output(h);
  return b.build();
}

/**
 * The four reference models used by tests and benchmarks (DESIGN §6). Each returns a fresh,
 * seeded graph whose single output is the logits (no softmax).
 */
export const referenceModels: Readonly<{
  plainCnn: ReferenceModelFactory;
  residualCnn: ReferenceModelFactory;
  mobileNetCnn: ReferenceModelFactory;
  mlp: ReferenceModelFactory;
}> = Object.freeze({ plainCnn, residualCnn, mobileNetCnn, mlp });

/** Names of the reference models. */
export type ReferenceModelName = keyof typeof referenceModels;
