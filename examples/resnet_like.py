# A small ResNet-like series network: a strided stem, conv-BN-ReLU stages that halve the
# resolution and double the channels, global average pooling and a classifier. (The graph
# version with skip connections is examples/resnet_graph.py.)
layers = [
    imageInputLayer([64, 64, 3], Normalization="zerocenter", Mean=np.array([0.485, 0.456, 0.406]).reshape(1, 1, 3)),
    convolution2dLayer(7, 16, Stride=2, Padding=3),
    batchNormalizationLayer(),
    reluLayer(),
    maxPooling2dLayer(3, Stride=2, Padding=1),
    convolution2dLayer(3, 16, Padding="same"), batchNormalizationLayer(), reluLayer(),
    convolution2dLayer(3, 16, Padding="same"), batchNormalizationLayer(), reluLayer(),
    convolution2dLayer(3, 32, Stride=2, Padding="same"), batchNormalizationLayer(), reluLayer(),
    convolution2dLayer(3, 32, Padding="same"), batchNormalizationLayer(), reluLayer(),
    convolution2dLayer(3, 64, Stride=2, Padding="same"), batchNormalizationLayer(), reluLayer(),
    convolution2dLayer(3, 64, Padding="same"), batchNormalizationLayer(), reluLayer(),
    globalAveragePooling2dLayer(),
    fullyConnectedLayer(10),
    softmaxLayer(),
    classificationLayer(),
]
seed = 1
