# A MobileNetV2-style network as a layerGraph: inverted residual blocks (1x1 expansion,
# 3x3 depthwise, 1x1 linear projection) with a residual addition where the stride is 1 and
# the channels match; ReLU6 is clippedReluLayer(6). A final depth concatenation joins two
# heads, to show a concatenation written in place by its producers.

lgraph = layerGraph([
    imageInputLayer([48, 48, 3], Normalization="rescale-symmetric", Min=0, Max=255, Name="input"),
    convolution2dLayer(3, 16, Stride=2, Padding="same", Name="stem_conv"),
    batchNormalizationLayer(Name="stem_bn"),
    clippedReluLayer(6, Name="stem_relu6"),
])
previous, channels = "stem_relu6", 16

# (expansion factor, output channels, stride) per block
for k, (expand, out_channels, stride) in enumerate([(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1),
                                                   (6, 32, 1), (6, 64, 2), (6, 64, 1)]):
    b = f"block{k + 1}"
    hidden = channels * expand
    block = []
    if expand != 1:
        block += [convolution2dLayer(1, hidden, Name=f"{b}_expand"), batchNormalizationLayer(Name=f"{b}_expand_bn"),
                  clippedReluLayer(6, Name=f"{b}_expand_relu6")]
    block += [groupedConvolution2dLayer(3, 1, "channel-wise", Stride=stride, Padding="same", Name=f"{b}_dw"),
              batchNormalizationLayer(Name=f"{b}_dw_bn"), clippedReluLayer(6, Name=f"{b}_dw_relu6"),
              convolution2dLayer(1, out_channels, Name=f"{b}_project"), batchNormalizationLayer(Name=f"{b}_project_bn")]
    residual = stride == 1 and channels == out_channels
    if residual:
        block.append(additionLayer(2, Name=f"{b}_add"))
    lgraph = addLayers(lgraph, block)
    lgraph = connectLayers(lgraph, previous, block[0].Name)
    if residual:
        lgraph = connectLayers(lgraph, previous, f"{b}_add/in2")
    previous, channels = block[-1].Name, out_channels

# two heads joined by a depth concatenation, then the classifier
lgraph = addLayers(lgraph, [convolution2dLayer(1, 96, Name="head_a"), clippedReluLayer(6, Name="head_a_relu6"),
                            depthConcatenationLayer(2, Name="heads"), globalAveragePooling2dLayer(Name="gap"),
                            fullyConnectedLayer(10, Name="fc"), softmaxLayer(Name="softmax")])
lgraph = addLayers(lgraph, [convolution2dLayer(3, 32, Padding="same", Name="head_b"),
                            reluLayer(Name="head_b_relu")])
lgraph = connectLayers(lgraph, previous, "head_a")
lgraph = connectLayers(lgraph, previous, "head_b")
lgraph = connectLayers(lgraph, "head_b_relu", "heads/in2")

name = "mobilenetv2"
seed = 5
