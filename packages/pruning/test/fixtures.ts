import { GraphBuilder, type Graph } from '@tensorpress/core-tensor';

/** stem 8 → (convA 4 ‖ convB 6) → Concat → BN → Relu → convC 8 → GAP → Flatten → fc 10. */
export function concatGraph(): Graph {
  const b = new GraphBuilder({ seed: 3 });
  let h = b.input('input', [null, 8, 8, 3]);
  h = b.relu(b.conv(h, { filters: 8, kernel: 3, padding: 'same', name: 'stem' }), 'stem_relu');
  const a = b.relu(b.conv(h, { filters: 4, kernel: 3, padding: 'same', name: 'convA' }), 'a_relu');
  const c = b.relu(b.conv(h, { filters: 6, kernel: 1, name: 'convB' }), 'b_relu');
  h = b.concat([a, c], -1, 'cat');
  h = b.relu(b.batchNorm(h, { name: 'cat_bn' }), 'cat_relu');
  h = b.conv(h, { filters: 8, kernel: 3, padding: 'same', name: 'convC' });
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  b.output(b.dense(h, 10, { name: 'fc' }));
  return b.build();
}

/** stem 8 + BN + Relu → gconv 3×3 8→8 group 2 + BN + Relu → conv 8 → GAP → Flatten → fc 10. */
export function groupedGraph(): Graph {
  const b = new GraphBuilder({ seed: 4 });
  let h = b.input('input', [null, 8, 8, 3]);
  h = b.relu(b.batchNorm(b.conv(h, { filters: 8, kernel: 3, padding: 'same', bias: false, name: 'stem' }), { name: 'stem_bn' }), 'stem_relu');
  h = b.relu(b.batchNorm(b.conv(h, { filters: 8, kernel: 3, padding: 'same', group: 2, bias: false, name: 'gconv' }), { name: 'gconv_bn' }), 'g_relu');
  h = b.conv(h, { filters: 8, kernel: 1, name: 'conv' });
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  b.output(b.dense(h, 10, { name: 'fc' }));
  return b.build();
}

/** stem 4 → conv 3×3 4 + Relu → Flatten (no pooling) → fc1 16 + Relu → fc2 10. */
export function flattenGemmGraph(): Graph {
  const b = new GraphBuilder({ seed: 5 });
  let h = b.input('input', [null, 6, 6, 2]);
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, padding: 'same', name: 'stem' }), 'stem_relu');
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, name: 'conv' }), 'relu');
  h = b.flatten(h, 'flatten');
  h = b.relu(b.dense(h, 16, { name: 'fc1' }), 'fc1_relu');
  b.output(b.dense(h, 10, { name: 'fc2' }));
  return b.build();
}

/** stem 4 → convA 3×3 4→4 → Relu → convB reads convA's weight → GAP → Flatten → fc 10. */
export function sharedWeightGraph(): Graph {
  const b = new GraphBuilder({ seed: 6 });
  let h = b.input('input', [null, 6, 6, 2]);
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'stem' }), 'stem_relu');
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'convA' }), 'a_relu');
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'convB' }), 'b_relu');
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  b.output(b.dense(h, 10, { name: 'fc' }));
  const g = b.build();
  return g.with({
    nodes: g.nodes.map((n) => (n.name === 'convB' ? { ...n, inputs: [n.inputs[0]!, 'convA.weight'] } : n)),
    params: g.params.filter((p) => p.name !== 'convB.weight'),
  });
}

/** conv (first) → GAP → Flatten → fc (output): nothing prunable unless pruneFirstConv. */
export function tinyGraph(): Graph {
  const b = new GraphBuilder({ seed: 7 });
  let h = b.input('input', [null, 6, 6, 1]);
  h = b.relu(b.conv(h, { filters: 4, kernel: 3, name: 'conv' }), 'relu');
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  b.output(b.dense(h, 3, { name: 'fc' }));
  return b.build();
}
