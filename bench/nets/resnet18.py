# ResNet-18 (ImageNet shapes, 224x224x3), MATLAB-style layer graph.
def block(name, channels, stride=1):
    return [
        convolution2dLayer(3, channels, Stride=stride, Padding="same", Name=f"{name}_conv1"),
        batchNormalizationLayer(Name=f"{name}_bn1"),
        reluLayer(Name=f"{name}_relu1"),
        convolution2dLayer(3, channels, Padding="same", Name=f"{name}_conv2"),
        batchNormalizationLayer(Name=f"{name}_bn2"),
        additionLayer(2, Name=f"{name}_add"),
        reluLayer(Name=f"{name}_relu"),
    ]
stages = [(64, 1), (128, 2), (256, 2), (512, 2)]
layers = [imageInputLayer([224, 224, 3], Normalization="none", Name="input"),
          convolution2dLayer(7, 64, Stride=2, Padding=3, Name="stem_conv"), batchNormalizationLayer(Name="stem_bn"),
          reluLayer(Name="stem_relu"), maxPooling2dLayer(3, Stride=2, Padding=1, Name="stem_pool")]
names = []
for s, (c, stride) in enumerate(stages):
    for b in range(2):
        n = f"s{s}b{b}"
        layers += block(n, c, stride if b == 0 else 1)
        names.append((n, c, stride if b == 0 else 1))
layers += [globalAveragePooling2dLayer(Name="gap"), fullyConnectedLayer(1000, Name="fc"), softmaxLayer(Name="softmax")]
lgraph = layerGraph(layers)
prev = "stem_pool"
for n, c, stride in names:
    if stride == 1 and not (n.endswith("b0") and n != "s0b0"):
        lgraph = connectLayers(lgraph, prev, f"{n}_add/in2")
    else:
        lgraph = addLayers(lgraph, [convolution2dLayer(1, c, Stride=stride, Name=f"{n}_proj"),
                                    batchNormalizationLayer(Name=f"{n}_proj_bn")])
        lgraph = connectLayers(lgraph, prev, f"{n}_proj")
        lgraph = connectLayers(lgraph, f"{n}_proj_bn", f"{n}_add/in2")
    prev = f"{n}_relu"
name = "resnet18"
seed = 1
