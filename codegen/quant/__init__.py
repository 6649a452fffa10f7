"""int8 quantization (TensorFlow Lite's scheme, which CMSIS-NN follows bit for bit).

    cal = codegen.quantize(net, images)                    # calibrate: every tensor's range and scale
    print(cal.report())
    lib = codegen.build(net, calibration=cal)              # int8 C: float API and int8 API
    codegen.quant.verify.verify_int8(net, lib).report()    # bit for bit against the integer reference

Modules: :mod:`.fixedpoint` (the requantization arithmetic), :mod:`.calibrate` (ranges and
parameters), :mod:`.scheme` (weights, biases, multipliers, tables), :mod:`.plan` (an int8 plan
from the float one; each op kind's int8 form is in its home, codegen/ops/), :mod:`.reference` (the
integer reference), :mod:`.verify` (bit-exactness, SQNR per layer).

The package itself imports nothing: the op homes import :mod:`.scheme`, and :mod:`.reference`
imports the op homes, so callers import the module they need (``codegen.quantize`` is
:func:`.calibrate.quantize`).
"""
