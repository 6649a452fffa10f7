# Every convolution option: stride, dilation, asymmetric [t b l r] padding, 'same' padding at
# stride 3 and with dilation, non-square filters, the deprecated [a b] padding, batch
# normalization (folded into the convolution), every ReLU variant and both poolings.
layers = [
    imageInputLayer([37, 41, 3], Normalization="zscore", Mean=[0.1, -0.2, 0.3], StandardDeviation=[1.5, 0.5, 2.0]),
    convolution2dLayer([3, 5], 8, Stride=[2, 1], Padding=[1, 0, 2, 1], Name="conv_asym"),
    batchNormalizationLayer(TrainedMean=np.linspace(-0.1, 0.1, 8).reshape(1, 1, 8),
                            TrainedVariance=np.linspace(0.5, 2.0, 8).reshape(1, 1, 8),
                            Scale=np.linspace(0.8, 1.2, 8).reshape(1, 1, 8), Offset=np.full((1, 1, 8), 0.05)),
    leakyReluLayer(0.1),
    convolution2dLayer(3, 12, DilationFactor=2, Padding="same"),
    clippedReluLayer(2.5),
    convolution2dLayer(4, 12, Stride=3, Padding="same", WeightsInitializer="he", BiasInitializer="narrow-normal"),
    reluLayer(),
    convolution2dLayer([2, 3], 10, 'Padding', [1, 2], 'DilationFactor', [2, 1]),
    averagePooling2dLayer(3, Stride=2, Padding="same", PaddingValue="mean"),
    maxPooling2dLayer([2, 3], Stride=[1, 2], Padding=[0, 1, 1, 0]),
    fullyConnectedLayer(6),
    softmaxLayer(),
]
seed = 7
