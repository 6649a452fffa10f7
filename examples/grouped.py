# Depthwise-separable and grouped convolutions (MobileNet-style blocks in series).
layers = [
    imageInputLayer([32, 32, 3], Normalization="rescale-symmetric", Min=0, Max=255),
    convolution2dLayer(3, 16, Stride=2, Padding="same"),
    batchNormalizationLayer(),
    clippedReluLayer(6),
    groupedConvolution2dLayer(3, 1, "channel-wise", Padding="same"),      # depthwise 3x3
    batchNormalizationLayer(),
    clippedReluLayer(6),
    convolution2dLayer(1, 24),                                              # pointwise
    groupedConvolution2dLayer(3, 2, 12, Stride=2, Padding=1),               # 12 groups of 2 in, 2 out
    reluLayer(),
    groupedConvolution2dLayer([3, 1], 4, 4, DilationFactor=[2, 1], Padding="same"),   # 4 groups of 6 in, 4 out
    reluLayer(),
    globalAveragePooling2dLayer(),
    fullyConnectedLayer(10),
    softmaxLayer(),
]
seed = 3
