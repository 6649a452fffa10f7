"""int8 quantization (TensorFlow Lite's scheme, which CMSIS-NN follows bit for bit): the
fixed-point arithmetic (:mod:`.fixedpoint`) and, in later steps, calibration, the integer
reference and the int8 code of every op."""
