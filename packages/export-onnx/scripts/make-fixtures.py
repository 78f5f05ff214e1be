#!/usr/bin/env python3
"""Regenerates packages/export-onnx/test/fixtures: small-width ResNet-, MobileNetV2-, MobileNetV3- and
ShuffleNetV2-style models built with the same blocks as torchvision's, exported by torch.onnx.export at
opset 13 with a dynamic batch, plus a seeded input batch and the outputs PyTorch computed for it.

Run with Debian's python3-torch + python3-onnx:  /usr/bin/python3 packages/export-onnx/scripts/make-fixtures.py
Tests only read the committed files; they never need Python.
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'test', 'fixtures')
torch.manual_seed(0)


def bn(c):
    b = nn.BatchNorm2d(c)
    # Random running statistics so that folding or mis-ordering BN parameters shows in the outputs.
    with torch.no_grad():
        b.running_mean.uniform_(-0.5, 0.5)
        b.running_var.uniform_(0.5, 1.5)
        b.weight.uniform_(0.5, 1.5)
        b.bias.uniform_(-0.2, 0.2)
    return b


class BasicBlock(nn.Module):  # torchvision.models.resnet.BasicBlock
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + idt)


class ResNetTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = bn(8)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.avg = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avg(x), 1))


def conv_bn_act(cin, cout, k, s, groups=1, act=nn.ReLU6):
    layers = [nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False), bn(cout)]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):  # torchvision.models.mobilenetv2.InvertedResidual
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(conv_bn_act(cin, hid, 1, 1), conv_bn_act(hid, hid, 3, stride, groups=hid),
                                  nn.Conv2d(hid, cout, 1, 1, 0, bias=False), bn(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(conv_bn_act(3, 8, 3, 2), InvertedResidual(8, 8, 1, 1), InvertedResidual(8, 12, 2, 4),
                                      InvertedResidual(12, 12, 1, 4), conv_bn_act(12, 32, 1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, 10))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):  # torchvision.ops.SqueezeExcitation with Hardsigmoid, as in MobileNetV3
    def __init__(self, c, sq):
        super().__init__()
        self.fc1 = nn.Conv2d(c, sq, 1)
        self.fc2 = nn.Conv2d(sq, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))
        return s * x


class MobileNetV3Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_bn_act(3, 8, 3, 2, act=nn.Hardswish)
        self.expand = conv_bn_act(8, 24, 1, 1, act=nn.Hardswish)
        self.dw = conv_bn_act(24, 24, 3, 1, groups=24, act=nn.Hardswish)
        self.se = SqueezeExcite(24, 8)
        self.project = conv_bn_act(24, 8, 1, 1, act=None)
        self.last = conv_bn_act(8, 32, 1, 1, act=nn.Hardswish)
        self.classifier = nn.Sequential(nn.Linear(32, 16), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(16, 10))

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(self.expand(x))))
        x = F.adaptive_avg_pool2d(self.last(x), 1)
        return self.classifier(torch.flatten(x, 1))


def channel_shuffle(x, groups):  # torchvision.models.shufflenetv2.channel_shuffle
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(b, -1, h, w)


class ShuffleUnit(nn.Module):  # torchvision.models.shufflenetv2.InvertedResidual
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        bf = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), bn(cin),
                                         nn.Conv2d(cin, bf, 1, bias=False), bn(bf), nn.ReLU())
        cin2 = cin if stride > 1 else bf
        self.branch2 = nn.Sequential(nn.Conv2d(cin2, bf, 1, bias=False), bn(bf), nn.ReLU(),
                                     nn.Conv2d(bf, bf, 3, stride, 1, groups=bf, bias=False), bn(bf),
                                     nn.Conv2d(bf, bf, 1, bias=False), bn(bf), nn.ReLU())

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn_act(3, 8, 3, 2, act=nn.ReLU)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.stage = nn.Sequential(ShuffleUnit(8, 16, 2), ShuffleUnit(16, 16, 1))
        self.conv5 = conv_bn_act(16, 32, 1, 1, act=nn.ReLU)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv5(self.stage(self.pool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


class ShuffleNetV2DownTiny(ShuffleNetV2Tiny):
    """One downsampling unit, so that its channel shuffle feeds conv5 (the pruning tests cut through it)."""

    def __init__(self):
        super().__init__()
        self.stage = nn.Sequential(ShuffleUnit(8, 16, 2))


def reestimate_bn(m, batches=4):
    """BN running statistics re-estimated on random data (cumulative averages), so that the outputs
    depend on the input (with default statistics several nets give nearly constant outputs)."""
    bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    for b in bns:
        b.reset_running_stats()
        b.momentum = None
    m.train()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for _ in range(batches):
            m(torch.randn(8, 3, 32, 32, generator=g))
    return m.eval()


class Inception(nn.Module):  # torchvision.models.googlenet.Inception
    def __init__(self, cin, c1, c3r, c3, c5r, c5, cp):
        super().__init__()
        self.b1 = conv_bn_act(cin, c1, 1, 1, act=nn.ReLU)
        self.b2 = nn.Sequential(conv_bn_act(cin, c3r, 1, 1, act=nn.ReLU), conv_bn_act(c3r, c3, 3, 1, act=nn.ReLU))
        self.b3 = nn.Sequential(conv_bn_act(cin, c5r, 1, 1, act=nn.ReLU), conv_bn_act(c5r, c5, 3, 1, act=nn.ReLU))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv_bn_act(cin, cp, 1, 1, act=nn.ReLU))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


class GoogLeNetTiny(nn.Module):
    """GoogLeNet's stem and inception blocks with its ceil_mode pools (32 -> 16 -> 8 -> 4 -> 2), plus
    average pools with ceil_mode, with and without count_include_pad."""

    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn_act(3, 8, 3, 1, act=nn.ReLU)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)  # 32 -> 16 (floor would give 15)
        self.inc3a = Inception(8, 4, 4, 8, 2, 4, 4)
        self.pool3 = nn.MaxPool2d(3, 2, ceil_mode=True)  # 16 -> 8
        self.inc4a = Inception(20, 8, 4, 8, 2, 4, 4)
        self.avg1 = nn.AvgPool2d(3, 2, 1, ceil_mode=True)  # 8 -> 5, count_include_pad=True
        self.avg2 = nn.AvgPool2d(2, 2, 1, ceil_mode=True, count_include_pad=False)  # 5 -> 4
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.pool3(self.inc3a(self.pool1(self.conv1(x))))
        x = self.avg2(self.avg1(self.inc4a(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class UNetTiny(nn.Module):
    """A two-level U-Net: max-pool down, ConvTranspose up (k2 s2, and k3 s2 p1 output_padding 1 in two
    groups), skip concatenations, a per-pixel 3-class output."""

    def __init__(self):
        super().__init__()
        self.enc1 = nn.Sequential(conv_bn_act(3, 8, 3, 1, act=nn.ReLU), conv_bn_act(8, 8, 3, 1, act=nn.ReLU))
        self.enc2 = conv_bn_act(8, 16, 3, 1, act=nn.ReLU)
        self.mid = conv_bn_act(16, 16, 3, 1, act=nn.ReLU)
        self.up2 = nn.ConvTranspose2d(16, 16, 3, 2, 1, output_padding=1, groups=2)
        self.dec2 = conv_bn_act(32, 16, 3, 1, act=nn.ReLU)
        self.up1 = nn.ConvTranspose2d(16, 8, 2, 2)
        self.dec1 = conv_bn_act(16, 8, 3, 1, act=nn.ReLU)
        self.out = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


class LRASPPTiny(nn.Module):  # torchvision.models.segmentation.lraspp.LRASPPHead on a small backbone
    def __init__(self):
        super().__init__()
        self.low = nn.Sequential(conv_bn_act(3, 8, 3, 2, act=nn.ReLU), conv_bn_act(8, 8, 3, 1, act=nn.Hardswish))  # /2
        self.high = nn.Sequential(conv_bn_act(8, 16, 3, 2, act=nn.ReLU), conv_bn_act(16, 24, 3, 2, act=nn.Hardswish))  # /8
        self.cbr = conv_bn_act(24, 16, 1, 1, act=nn.ReLU)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(24, 16, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(8, 4, 1)
        self.high_classifier = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        low = self.low(x)
        high = self.high(low)
        y = self.cbr(high) * self.scale(high)
        y = F.interpolate(y, size=low.shape[-2:], mode='bilinear', align_corners=False)
        y = self.low_classifier(low) + self.high_classifier(y)
        y = F.interpolate(y, scale_factor=2.0, mode='nearest')
        return F.interpolate(y, size=(24, 24), mode='bilinear', align_corners=True)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        a = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5
        y = (a.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class ViTTiny(nn.Module):
    """A ViT: 8x8 patches, a class token (Expand + Concat), learned positions, one pre-norm encoder block
    (LayerNorm, 4-head attention with batched MatMul and Softmax, GELU MLP), the class token's logits."""

    def __init__(self, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, 4)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)
        with torch.no_grad():
            for ln in (self.ln1, self.ln2, self.ln):
                ln.weight.uniform_(0.5, 1.5)
                ln.bias.uniform_(-0.2, 0.2)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln(x)[:, 0])


class UpsampleNetOpset9(nn.Module):
    """An opset-9 classifier: Upsample (nearest, scales input), ReLU6 as Clip with min/max attributes,
    Pad and Slice with attributes, BatchNormalization, Dropout."""

    def __init__(self):
        super().__init__()
        self.c1 = conv_bn_act(3, 8, 3, 2, act=nn.ReLU6)
        self.up = nn.Upsample(scale_factor=2, mode='nearest')
        self.c2 = conv_bn_act(8, 8, 3, 2, act=nn.ReLU6)
        self.c3 = nn.Conv2d(8, 16, 3, 2, 0)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.c2(self.up(self.c1(x)))
        x = F.pad(x, (1, 1, 1, 1))[:, :, 1:]
        x = self.c3(x)
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


MODELS = {
    'resnet-tiny': ResNetTiny,
    'mobilenetv2-tiny': MobileNetV2Tiny,
    'mobilenetv3-tiny': MobileNetV3Tiny,
    'shufflenetv2-tiny': ShuffleNetV2Tiny,
}

# Models whose BN statistics are re-estimated on random data, each at its opset(s): name -> (class, opset).
MORE_MODELS = {
    'googlenet-tiny': (GoogLeNetTiny, 13),
    'unet-tiny': (UNetTiny, 11),
    'lraspp-tiny': (LRASPPTiny, 13),
    'vit-tiny-op13': (ViTTiny, 13),
    'vit-tiny-op17': (ViTTiny, 17),
    'upsample-op9': (UpsampleNetOpset9, 9),
    'shufflenetv2-down-tiny': (ShuffleNetV2DownTiny, 13),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x.numpy().astype('<f4').tofile(os.path.join(OUT, 'input-2x3x32x32.f32'))
    meta = {'input': {'file': 'input-2x3x32x32.f32', 'shape': [2, 3, 32, 32], 'layout': 'NCHW'}, 'torch': torch.__version__,
            'models': {}}
    todo = [(name, cls, 13, False) for name, cls in MODELS.items()] + [(n, c, o, True) for n, (c, o) in MORE_MODELS.items()]
    for name, cls, opset, reestimate in todo:
        torch.manual_seed(0)
        m = reestimate_bn(cls()) if reestimate else cls().eval()
        with torch.no_grad():
            y = m(x)
        path = os.path.join(OUT, f'{name}.onnx')
        torch.onnx.export(m, x, path, opset_version=opset, input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}}, do_constant_folding=True)
        y.numpy().astype('<f4').tofile(os.path.join(OUT, f'{name}.torch-out.f32'))
        meta['models'][name] = {'file': f'{name}.onnx', 'output': f'{name}.torch-out.f32', 'outputShape': list(y.shape), 'opset': opset}
    with open(os.path.join(OUT, 'fixtures.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
