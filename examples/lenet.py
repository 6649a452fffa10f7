# LeNet as in MATLAB's convolution2dLayer documentation ("Include a convolution layer in a
# Layer array"). Weights come from the layers' default initializers, seeded.
layers = [
    imageInputLayer([28, 28, 1])
    , convolution2dLayer(5, 20)
    , reluLayer()
    , maxPooling2dLayer(2, 'Stride', 2)
    , fullyConnectedLayer(10)
    , softmaxLayer()
    , classificationLayer()
]
seed = 0
