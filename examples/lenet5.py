# The classic LeNet-5 (LeCun et al., 1998) on 32x32 images: tanh activations, average pooling,
# a sigmoid-gated first stage as in some of its descriptions. Weights from the layers' default
# initializers, seeded.
layers = [
    imageInputLayer([32, 32, 1], Normalization="none")
    , convolution2dLayer(5, 6)
    , tanhLayer()
    , averagePooling2dLayer(2, Stride=2)
    , sigmoidLayer()
    , convolution2dLayer(5, 16)
    , tanhLayer()
    , averagePooling2dLayer(2, Stride=2)
    , fullyConnectedLayer(120)
    , tanhLayer()
    , fullyConnectedLayer(84)
    , tanhLayer()
    , fullyConnectedLayer(10)
    , softmaxLayer()
    , classificationLayer()
]
seed = 0
