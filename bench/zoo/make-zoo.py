#!/usr/bin/env python3
"""Exports the model zoo of `npm run bench -- zoo`: torchvision architectures (and a hand-written U-Net
and transformer encoder) with random weights, exported by torch.onnx.export with a dynamic batch at
several opsets, into bench/.cache/zoo (generated, never committed).

Random weights alone make several torchvision nets output nearly constant logits (BN running
statistics of 0/1 against activations that grow or vanish layer after layer), so every model's
batch-norm statistics are re-estimated on random N(0, 1) inputs (train mode, momentum None: the
cumulative average over REESTIMATE_BATCHES batches) before export, and zero-initialised parameters
(torchvision's ViT head and class token) are re-drawn. The manifest records how much each model's outputs depend on its
input (`inputSensitivity`: the mean over outputs of the std across a batch of random inputs, over
the mean |output|).

Run with Debian's python3-torch + python3-torchvision + python3-onnx (torch 1.13, torchvision 0.14,
onnx 1.12):  /usr/bin/python3 bench/zoo/make-zoo.py [--only name,name] [--force]
"""
import argparse
import json
import os
import sys
import time
import traceback

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', '.cache', 'zoo')
REESTIMATE_BATCHES = 4
REESTIMATE_BATCH = 8


class UNet(nn.Module):
    """A small U-Net (Ronneberger et al.): two 3x3 conv+BN+ReLU per level, max-pool down,
    ConvTranspose 2x2 stride 2 up, skip concatenations, 2-class map out."""

    def __init__(self, c=(16, 32, 64, 128), classes=2):
        super().__init__()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                 nn.Conv2d(o, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.downs = nn.ModuleList([block(3, c[0])] + [block(c[k], c[k + 1]) for k in range(len(c) - 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(c[k + 1], c[k], 2, stride=2) for k in reversed(range(len(c) - 1))])
        self.merge = nn.ModuleList([block(2 * c[k], c[k]) for k in reversed(range(len(c) - 1))])
        self.head = nn.Conv2d(c[0], classes, 1)

    def forward(self, x):
        skips = []
        for k, d in enumerate(self.downs):
            x = d(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, m, s in zip(self.ups, self.merge, reversed(skips[:-1])):
            x = m(torch.cat([up(x), s], 1))
        return self.head(x)


class TextEncoder(nn.Module):
    """A transformer encoder classifier over [N, T, D] float features (2 layers, 4 heads, GELU)."""

    def __init__(self, d=128, layers=2, heads=4, classes=10):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, activation='gelu', batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.norm(self.encoder(x)).mean(1))


class SegOut(nn.Module):
    """torchvision segmentation models return a dict; export its 'out' map."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)['out']


def small_vit():
    m = torchvision.models.VisionTransformer(image_size=224, patch_size=16, num_layers=4, num_heads=3, hidden_dim=192, mlp_dim=768, num_classes=1000)
    # torchvision zero-initialises the head (the logits would not depend on the input) and the class
    # token (a zero token whose LayerNorm divides by a near-zero std: no trained ViT has one).
    nn.init.normal_(m.heads.head.weight, std=0.02)
    nn.init.normal_(m.class_token, std=1.0)
    return m


tv = torchvision.models
# name: (constructor, input shape (batch 1), task, opsets)
ZOO = {
    'resnet18': (lambda: tv.resnet18(), [1, 3, 224, 224], 'classification', [9, 13, 17]),
    'resnet50': (lambda: tv.resnet50(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'mobilenet_v2': (lambda: tv.mobilenet_v2(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'mobilenet_v3_large': (lambda: tv.mobilenet_v3_large(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'shufflenet_v2_x1_0': (lambda: tv.shufflenet_v2_x1_0(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'squeezenet1_1': (lambda: tv.squeezenet1_1(), [1, 3, 224, 224], 'classification', [9, 13, 17]),
    'googlenet': (lambda: tv.googlenet(aux_logits=False, init_weights=True), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'efficientnet_b0': (lambda: tv.efficientnet_b0(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'densenet121': (lambda: tv.densenet121(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'regnet_y_400mf': (lambda: tv.regnet_y_400mf(), [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'lraspp_mobilenet_v3_large': (lambda: SegOut(tv.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21)), [1, 3, 224, 224], 'segmentation', [11, 13, 17]),
    'unet': (lambda: UNet(), [1, 3, 128, 128], 'segmentation', [11, 13, 17]),
    'vit_tiny': (small_vit, [1, 3, 224, 224], 'classification', [11, 13, 17]),
    'transformer_encoder': (lambda: TextEncoder(), [1, 32, 128], 'classification', [11, 13, 17]),
}


def reestimate_bn(model, shape, gen):
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    for b in bns:
        b.reset_running_stats()
        b.momentum = None  # cumulative moving average
    model.train()
    with torch.no_grad():
        for _ in range(REESTIMATE_BATCHES):
            model(torch.randn([REESTIMATE_BATCH] + shape[1:], generator=gen))
    model.eval()
    return len(bns)


def input_sensitivity(model, shape, gen):
    with torch.no_grad():
        y = model(torch.randn([8] + shape[1:], generator=gen)).flatten(1)
    return float(y.std(0).mean() / (y.abs().mean() + 1e-12))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--only', default='')
    ap.add_argument('--force', action='store_true')
    a = ap.parse_args()
    only = [s for s in a.only.split(',') if s]
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    manifest_path = os.path.join(OUT, 'zoo.json')
    manifest = {'models': {}}
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            manifest = json.load(f)
    manifest['torch'] = torch.__version__
    manifest['torchvision'] = torchvision.__version__
    for name, (make, shape, task, opsets) in ZOO.items():
        if only and name not in only:
            continue
        prev = manifest['models'].get(name)
        if prev and not a.force and all(os.path.exists(os.path.join(OUT, f)) for f in prev['files'].values()) and prev['files']:
            print(f'{name}: cached', flush=True)
            continue
        t0 = time.time()
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(1)
        model = make()
        bns = reestimate_bn(model, shape, gen)
        model.eval()
        sens = input_sensitivity(model, shape, gen)
        x = torch.randn(shape, generator=gen)
        entry = {'task': task, 'input': shape, 'inputLayout': 'NCHW' if len(shape) == 4 else 'NTD', 'batchNorms': bns,
                 'params': sum(p.numel() for p in model.parameters()), 'inputSensitivity': round(sens, 4), 'files': {}, 'errors': {}}
        for opset in opsets:
            path = os.path.join(OUT, f'{name}-op{opset}.onnx')
            try:
                torch.onnx.export(model, x, path, opset_version=opset, input_names=['input'], output_names=['output'],
                                  dynamic_axes={'input': {0: 'batch'}, 'output': {0: 'batch'}}, do_constant_folding=True)
                entry['files'][str(opset)] = os.path.basename(path)
            except Exception as e:  # an opset the exporter cannot write this model at
                entry['errors'][str(opset)] = f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""}'[:300]
                traceback.print_exc(limit=1)
        entry['seconds'] = round(time.time() - t0, 1)
        manifest['models'][name] = entry
        print(f"{name}: opsets {list(entry['files'])} errors {list(entry['errors'])} sensitivity {entry['inputSensitivity']} in {entry['seconds']} s", flush=True)
        tmp = manifest_path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(manifest, f, indent=2)
        os.replace(tmp, manifest_path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
