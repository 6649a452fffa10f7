"""A model zoo of well-known CNN architectures, written in PyTorch (torchvision is not installable
beside this torch build), with random weights and non-trivial batch-norm statistics.

Each entry of :data:`ZOO` is ``(factory, input shape (C, H, W), size)``: ``size`` is 'small'
(CUDA emulated and Cortex-M4 checks too), 'medium' (C) or 'large' (C, behind ``--long``). Input
resolutions are the architectures' own where that is cheap, and smaller (the same layers and
strides) for the ImageNet models, except ResNet-18, kept at 224 x 224 for the build-time goal.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights and batch-norm statistics far from the identity, deterministic per seed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
    return model.eval()


def conv_bn(cin, cout, k=3, s=1, groups=1, act=nn.ReLU, padding=None):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2 if padding is None else padding, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


# ------------------------------------------------------------------ residual networks

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, act=None)
        self.short = conv_bn(cin, cout, 1, stride, act=None) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, classes)

    def forward(self, x):
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1), 1))


class ResNet8(nn.Module):
    """MLPerf Tiny image classification (CIFAR-10): a 16-channel stem and three residual stacks."""

    def __init__(self):
        super().__init__()
        self.stem = conv_bn(3, 16, 3)
        self.blocks = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return F.softmax(self.head(torch.flatten(F.avg_pool2d(self.blocks(self.stem(x)), 8), 1)), dim=1)


# ------------------------------------------------------------------ mobile networks

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand, act=nn.ReLU6, se=False, kernel=3, se_gate=nn.Hardsigmoid):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn(cin, hidden, 1, act=act)] if expand != 1 else []
        layers.append(conv_bn(hidden, hidden, kernel, stride, groups=hidden, act=act))
        self.body = nn.Sequential(*layers)
        self.se = SqueezeExcite(hidden, max(8, hidden // 4), gate=se_gate) if se else nn.Identity()
        self.project = conv_bn(hidden, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.se(self.body(x)))
        return x + y if self.residual else y


class SqueezeExcite(nn.Module):
    def __init__(self, channels, squeezed, gate=nn.Hardsigmoid, act=nn.ReLU):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, squeezed, 1), nn.Conv2d(squeezed, channels, 1)
        self.act, self.gate = act(), gate()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class MobileNetV2(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        layers, cin = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
        for t, c, n, s in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class MobileNetV3Small(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        hs, re = nn.Hardswish, nn.ReLU
        cfg = [(3, 16, 16, True, re, 2), (3, 72, 24, False, re, 2), (3, 88, 24, False, re, 1),
               (5, 96, 40, True, hs, 2), (5, 240, 40, True, hs, 1), (5, 240, 40, True, hs, 1),
               (5, 120, 48, True, hs, 1), (5, 144, 48, True, hs, 1), (5, 288, 96, True, hs, 2),
               (5, 576, 96, True, hs, 1), (5, 576, 96, True, hs, 1)]
        layers, cin = [conv_bn(3, 16, 3, 2, act=hs)], 16
        for k, exp, cout, se, act, s in cfg:
            layers.append(InvertedResidualV3(cin, exp, cout, k, s, se, act))
            cin = cout
        layers.append(conv_bn(cin, 576, 1, act=hs))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(576, 1024), hs(), nn.Dropout(0.2), nn.Linear(1024, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class InvertedResidualV3(nn.Module):
    def __init__(self, cin, exp, cout, k, s, se, act):
        super().__init__()
        layers = [conv_bn(cin, exp, 1, act=act)] if exp != cin else []
        layers.append(conv_bn(exp, exp, k, s, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp, _make_divisible(exp // 4)))
        layers.append(conv_bn(exp, cout, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.residual = s == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def _make_divisible(v, divisor=8):
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class EfficientNetB0(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        cfg = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3), (6, 112, 3, 1, 5),
               (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]
        layers, cin = [conv_bn(3, 32, 3, 2, act=nn.SiLU)], 32
        for t, c, n, s, k in cfg:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t, act=nn.SiLU, se=True, kernel=k,
                                               se_gate=nn.Sigmoid))
                cin = c
        layers.append(conv_bn(cin, 1280, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


class MobileNetV1(nn.Module):
    """MLPerf Tiny visual wake words: MobileNetV1 with width 0.25 on 96 x 96 x 3, two classes."""

    def __init__(self, width=0.25, classes=2):
        super().__init__()
        c = lambda n: max(8, int(n * width))  # noqa: E731
        cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
               (512, 1), (1024, 2), (1024, 1)]
        layers, cin = [conv_bn(3, c(32), 3, 2)], c(32)
        for cout, s in cfg:
            layers += [conv_bn(cin, cin, 3, s, groups=cin), conv_bn(cin, c(cout), 1)]
            cin = c(cout)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        return F.softmax(self.head(torch.flatten(F.avg_pool2d(self.features(x), 3), 1)), dim=1)


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting: DS-CNN on 49 x 10 MFCC features, 12 classes."""

    def __init__(self):
        super().__init__()
        layers = [nn.Conv2d(1, 64, (10, 4), 2, padding=(5, 1)), nn.BatchNorm2d(64), nn.ReLU()]
        for _ in range(4):
            layers += [conv_bn(64, 64, 3, 1, groups=64), conv_bn(64, 64, 1)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(64, 12)

    def forward(self, x):
        return F.softmax(self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1)), dim=1)


class Autoencoder(nn.Module):
    """MLPerf Tiny anomaly detection: a dense autoencoder on 640 features."""

    def __init__(self):
        super().__init__()
        dims = [640, 128, 128, 128, 128, 8, 128, 128, 128, 128]
        layers = []
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(128, 640))

    def forward(self, x):
        return self.body(x)


# ------------------------------------------------------------------ other classics

class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1."""

    def __init__(self, classes=1000):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 3, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(64, 16, 64), Fire(128, 16, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(128, 32, 128), Fire(256, 32, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256),
            Fire(512, 64, 256))
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(512, classes, 1), nn.ReLU())

    def forward(self, x):
        return torch.flatten(F.adaptive_avg_pool2d(self.classifier(self.features(x)), 1), 1)


def channel_shuffle(x, groups):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).contiguous().view(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        branch = cout // 2
        self.stride = stride
        if stride > 1:
            self.left = nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, branch, 1))
        right_in = cin if stride > 1 else branch
        self.right = nn.Sequential(conv_bn(right_in, branch, 1), conv_bn(branch, branch, 3, stride, groups=branch,
                                                                         act=None), conv_bn(branch, branch, 1))

    def forward(self, x):
        if self.stride == 1:
            a, b = x.chunk(2, dim=1)
            out = torch.cat([a, self.right(b)], 1)
        else:
            out = torch.cat([self.left(x), self.right(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 0.5x."""

    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 24
        for cout, repeat in ((48, 4), (96, 8), (192, 4)):
            for i in range(repeat):
                layers.append(ShuffleUnit(cin, cout, 2 if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.last = conv_bn(cin, 1024, 1)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        return self.fc(self.last(self.stages(self.stem(x))).mean([2, 3]))


class UNet(nn.Module):
    """A small U-Net: two downsamplings, transposed-convolution upsamplings, skip concatenations."""

    def __init__(self, classes=3):
        super().__init__()
        self.d1, self.d2 = conv_bn(3, 16, 3), conv_bn(16, 32, 3)
        self.mid = conv_bn(32, 64, 3)
        self.u2, self.c2 = nn.ConvTranspose2d(64, 32, 2, 2), conv_bn(64, 32, 3)
        self.u1, self.c1 = nn.ConvTranspose2d(32, 16, 2, 2), conv_bn(32, 16, 3)
        self.out = nn.Conv2d(16, classes, 1)

    def forward(self, x):
        a = self.d1(x)
        b = self.d2(F.max_pool2d(a, 2))
        m = self.mid(F.max_pool2d(b, 2))
        b2 = self.c2(torch.cat([self.u2(m), b], 1))
        return self.out(self.c1(torch.cat([self.u1(b2), a], 1)))


class TwoHeadDetector(nn.Module):
    """YOLO-style: a backbone, a coarse head, and a fine head fed by an upsampled coarse map (x2
    nearest) concatenated with an earlier feature map; two outputs."""

    def __init__(self, anchors=3, classes=4):
        super().__init__()
        self.b1 = nn.Sequential(conv_bn(3, 16, 3, 2, act=nn.LeakyReLU), conv_bn(16, 32, 3, 2, act=nn.LeakyReLU))
        self.b2 = nn.Sequential(conv_bn(32, 64, 3, 2, act=nn.LeakyReLU), conv_bn(64, 64, 3, 1, act=nn.LeakyReLU))
        self.coarse = nn.Conv2d(64, anchors * (5 + classes), 1)
        self.reduce = conv_bn(64, 32, 1, act=nn.LeakyReLU)
        self.fine = nn.Sequential(conv_bn(64, 32, 3, act=nn.LeakyReLU), nn.Conv2d(32, anchors * (5 + classes), 1))

    def forward(self, x):
        f1 = self.b1(x)
        f2 = self.b2(f1)
        up = F.interpolate(self.reduce(f2), scale_factor=2, mode="nearest")
        return self.coarse(f2), self.fine(torch.cat([up, f1], 1))


class LeNet5(nn.Module):
    """The classic LeNet-5 with tanh activations and average pooling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                                      nn.AvgPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                                        nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


class AlexNetLRN(nn.Module):
    """AlexNet's structure (11x11 stride-4 stem, local response normalization, overlapping max pools)
    with narrower layers."""

    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 48, 11, 4, 2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(48, 64, 5, padding=2), nn.ReLU(), nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(), nn.Conv2d(96, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, 2))
        self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(64 * 3 * 3, 256), nn.ReLU(), nn.Linear(256, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


ZOO = {
    "resnet18": (ResNet18, (3, 224, 224), "large"),
    "mobilenet_v2": (MobileNetV2, (3, 96, 96), "large"),
    "mobilenet_v3_small": (MobileNetV3Small, (3, 96, 96), "medium"),
    "efficientnet_b0": (EfficientNetB0, (3, 96, 96), "large"),
    "squeezenet1_1": (SqueezeNet, (3, 96, 96), "medium"),
    "shufflenet_v2_x0_5": (ShuffleNetV2, (3, 96, 96), "medium"),
    "unet": (UNet, (3, 32, 32), "small"),
    "two_head_detector": (TwoHeadDetector, (3, 64, 64), "small"),
    "lenet5": (LeNet5, (1, 32, 32), "small"),
    "alexnet_lrn": (AlexNetLRN, (3, 127, 127), "medium"),
    "mlperf_resnet8": (ResNet8, (3, 32, 32), "small"),
    "mlperf_ds_cnn": (DSCNN, (1, 49, 10), "small"),
    "mlperf_mobilenet_v1_025": (MobileNetV1, (3, 96, 96), "small"),
    "mlperf_autoencoder": (Autoencoder, (640,), "small"),
}


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    factory, shape, _ = ZOO[name]
    torch.manual_seed(seed)
    return randomize(factory(), seed), shape
