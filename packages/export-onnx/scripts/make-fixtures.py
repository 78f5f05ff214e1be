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


MODELS = {
    'resnet-tiny': ResNetTiny,
    'mobilenetv2-tiny': MobileNetV2Tiny,
    'mobilenetv3-tiny': MobileNetV3Tiny,
    'shufflenetv2-tiny': ShuffleNetV2Tiny,
}


def main():
    os.makedirs(OUT, exist_ok=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x.numpy().astype('<f4').tofile(os.path.join(OUT, 'input-2x3x32x32.f32'))
    meta = {'input': {'file': 'input-2x3x32x32.f32', 'shape': [2, 3, 32, 32], 'layout': 'NCHW'}, 'torch': torch.__version__,
            'models': {}}
    for name, cls in MODELS.items():
        torch.manual_seed(0)
        m = cls().eval()
        with torch.no_grad():
            y = m(x)
        path = os.path.join(OUT, f'{name}.onnx')
        torch.onnx.export(m, x, path, opset_version=13, input_names=['input'], output_names=['logits'],
                          dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}}, do_constant_folding=True)
        y.numpy().astype('<f4').tofile(os.path.join(OUT, f'{name}.torch-out.f32'))
        meta['models'][name] = {'file': f'{name}.onnx', 'output': f'{name}.torch-out.f32', 'outputShape': list(y.shape)}
    with open(os.path.join(OUT, 'fixtures.json'), 'w') as f:
        json.dump(meta, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
