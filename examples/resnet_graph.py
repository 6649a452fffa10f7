# A ResNet-style network as a layerGraph: basic blocks (two 3x3 conv-BN-ReLU with an identity
# shortcut) and downsampling blocks (stride-2 main path, 1x1 stride-2 conv + BN projection on
# the shortcut), as in MATLAB's "Train Residual Network" examples.


def basic_block(name, channels, stride=1):
    """Main path of a residual block, ending in the addition '<name>_add' and its ReLU."""
    return [
        convolution2dLayer(3, channels, Stride=stride, Padding="same", Name=f"{name}_conv1"),
        batchNormalizationLayer(Name=f"{name}_bn1"),
        reluLayer(Name=f"{name}_relu1"),
        convolution2dLayer(3, channels, Padding="same", Name=f"{name}_conv2"),
        batchNormalizationLayer(Name=f"{name}_bn2"),
        additionLayer(2, Name=f"{name}_add"),
        reluLayer(Name=f"{name}_relu"),
    ]


layers = [
    imageInputLayer([32, 32, 3], Normalization="zscore", Mean=np.array([0.49, 0.48, 0.45]).reshape(1, 1, 3),
                    StandardDeviation=np.array([0.25, 0.24, 0.26]).reshape(1, 1, 3), Name="input"),
    convolution2dLayer(3, 16, Padding="same", Name="stem_conv"),
    batchNormalizationLayer(Name="stem_bn"),
    reluLayer(Name="stem_relu"),
    *basic_block("s1b1", 16),
    *basic_block("s1b2", 16),
    *basic_block("s2b1", 32, stride=2),
    *basic_block("s2b2", 32),
    *basic_block("s3b1", 64, stride=2),
    *basic_block("s3b2", 64),
    globalAveragePooling2dLayer(Name="gap"),
    fullyConnectedLayer(10, Name="fc"),
    softmaxLayer(Name="softmax"),
    classificationLayer(Name="output"),
]
lgraph = layerGraph(layers)

# identity shortcuts
lgraph = connectLayers(lgraph, "stem_relu", "s1b1_add/in2")
lgraph = connectLayers(lgraph, "s1b1_relu", "s1b2_add/in2")
lgraph = connectLayers(lgraph, "s2b1_relu", "s2b2_add/in2")
lgraph = connectLayers(lgraph, "s3b1_relu", "s3b2_add/in2")

# projection shortcuts of the downsampling blocks
for block, source, channels in [("s2b1", "s1b2_relu", 32), ("s3b1", "s2b2_relu", 64)]:
    lgraph = addLayers(lgraph, [convolution2dLayer(1, channels, Stride=2, Name=f"{block}_proj"),
                                batchNormalizationLayer(Name=f"{block}_proj_bn")])
    lgraph = connectLayers(lgraph, source, f"{block}_proj")
    lgraph = connectLayers(lgraph, f"{block}_proj_bn", f"{block}_add/in2")

name = "resnet_graph"
seed = 11
