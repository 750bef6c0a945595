"""Print the sizes of the TFLM structs and kernel OpData that tflm_export's targets table holds,
read from the TFLM sources compiled for a core (sizeof/alignof, by the compiler, not by hand).

    python scripts/cortexm/struct_sizes.py cortex-m4 [--tflm /work/cortexm/src/tflite-micro]

Each kernel file is compiled with a line appended that declares ``char size_X[sizeof(T)]``, so
types local to a kernel's .cc (its ``OpData``) are measured too; ``arm-none-eabi-nm -S`` reads them.
``x86-64`` compiles with the host g++ and the PyPI runtime's defines (USE_TFLM_COMPRESSION).
"""
import argparse
import os
import subprocess
import sys
import tempfile

COMMON = ("tensorflow/lite/micro/micro_allocator.h", "tensorflow/lite/micro/micro_allocation_info.h",
          "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h",
          "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h",
          "tensorflow/lite/core/c/builtin_op_data.h")
STRUCTS = {
    "SingleArenaBufferAllocator": "SingleArenaBufferAllocator", "GreedyMemoryPlanner": "GreedyMemoryPlanner",
    "MicroAllocator": "MicroAllocator", "SubgraphAllocations": "SubgraphAllocations",
    "TfLiteEvalTensor": "TfLiteEvalTensor", "NodeAndRegistration": "NodeAndRegistration",
    "TfLiteTensor": "TfLiteTensor", "TfLiteAffineQuantization": "TfLiteAffineQuantization",
    "ScratchBufferRequest": "internal::ScratchBufferRequest", "ScratchBufferHandle": "ScratchBufferHandle",
    "AllocationInfo": "AllocationInfo",
}
PARAMS = {  # builtin options struct per op
    "CONV_2D": "TfLiteConvParams", "DEPTHWISE_CONV_2D": "TfLiteDepthwiseConvParams",
    "FULLY_CONNECTED": "TfLiteFullyConnectedParams", "TRANSPOSE_CONV": "TfLiteTransposeConvParams",
    "MAX_POOL_2D": "TfLitePoolParams", "ADD": "TfLiteAddParams", "SUB": "TfLiteSubParams",
    "MUL": "TfLiteMulParams", "CONCATENATION": "TfLiteConcatenationParams", "MEAN": "TfLiteReducerParams",
    "RESHAPE": "TfLiteReshapeParams", "SQUEEZE": "TfLiteSqueezeParams", "SHAPE": "TfLiteShapeParams",
    "PACK": "TfLitePackParams", "UNPACK": "TfLiteUnpackParams", "STRIDED_SLICE": "TfLiteStridedSliceParams",
    "SOFTMAX": "TfLiteSoftmaxParams", "LEAKY_RELU": "TfLiteLeakyReluParams",
    "RESIZE_NEAREST_NEIGHBOR": "TfLiteResizeNearestNeighborParams",
    "RESIZE_BILINEAR": "TfLiteResizeBilinearParams", "SPACE_TO_DEPTH": "TfLiteSpaceToDepthParams",
    "DEPTH_TO_SPACE": "TfLiteDepthToSpaceParams",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "TfLiteUnidirectionalSequenceLSTMParams",
}
OP_DATA = {  # kernels -> op -> (file under kernels/, the type its Init allocates)
    "reference": {
        "CONV_2D": ("conv_common.cc", "OpDataConv"), "DEPTHWISE_CONV_2D": ("depthwise_conv.cc", "OpDataConv"),
        "FULLY_CONNECTED": ("fully_connected.cc", "OpDataFullyConnected"),
        "TRANSPOSE_CONV": ("transpose_conv.cc", "OpData"), "MAX_POOL_2D": ("pooling.cc", "OpDataPooling"),
        "ADD": ("add.cc", "OpDataAdd"), "SUB": ("sub.cc", "OpDataSub"), "MUL": ("mul_common.cc", "OpDataMul"),
        "CONCATENATION": ("concatenation.cc", "OpData"), "MEAN": ("reduce.cc", "OpDataReduce"),
        "STRIDED_SLICE": ("strided_slice_common.cc", "StridedSliceOpData"),
        "SOFTMAX": ("softmax_common.cc", "SoftmaxParams"), "QUANTIZE": ("quantize.cc", "OpDataQuantizeReference"),
        "DEQUANTIZE": ("dequantize.cc", "DequantizeOpData"), "RELU": ("activations.cc", "ReluOpData"),
        "RELU6": ("activations.cc", "Relu6OpData"), "LEAKY_RELU": ("leaky_relu.cc", "LeakyReluOpData"),
        "LOGISTIC": ("logistic.cc", "OpDataLogistic"), "TANH": ("tanh.cc", "OpData"),
        "HARD_SWISH": ("hard_swish.cc", "HardSwishParams"), "PRELU": ("prelu.cc", "PreluParams"),
        "PAD": ("pad_common.cc", "OpData"),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": ("unidirectional_sequence_lstm.cc", "OpDataLSTM"),
    },
    "cmsis_nn": {
        "CONV_2D": ("cmsis_nn/conv.cc", "OpData"), "DEPTHWISE_CONV_2D": ("cmsis_nn/depthwise_conv.cc", "OpData"),
        "FULLY_CONNECTED": ("cmsis_nn/fully_connected.cc", "OpData"),
        "TRANSPOSE_CONV": ("cmsis_nn/transpose_conv.cc", "OpData"),
        "MAX_POOL_2D": ("cmsis_nn/pooling.cc", "OpData"), "ADD": ("cmsis_nn/add.cc", "OpData"),
        "MUL": ("cmsis_nn/mul.cc", "OpDataMul"), "SOFTMAX": ("cmsis_nn/softmax.cc", "CMSISNNSoftmaxParams"),
        "PAD": ("cmsis_nn/pad.cc", "OpData"),
        "UNIDIRECTIONAL_SEQUENCE_LSTM": ("cmsis_nn/unidirectional_sequence_lstm.cc", "OpData"),
    },
}
CORE_FLAGS = {"cortex-m0plus": "-mcpu=cortex-m0plus -mthumb -mfloat-abi=soft",
              "cortex-m4": "-mcpu=cortex-m4 -mthumb -mfloat-abi=soft",
              "cortex-m7": "-mcpu=cortex-m7 -mthumb -mfloat-abi=soft",
              "cortex-m55": "-mcpu=cortex-m55 -mthumb -mfloat-abi=softfp -mfpu=auto"}


def compile_sizes(cxx: list, source: str, tflm: str) -> dict:
    """{symbol: bytes} of the char arrays ``source`` declares, compiled by ``cxx``."""
    with tempfile.TemporaryDirectory() as tmp:
        path, obj = os.path.join(tmp, "s.cc"), os.path.join(tmp, "s.o")
        with open(path, "w") as f:
            f.write(source)
        proc = subprocess.run(cxx + ["-c", path, "-o", obj], capture_output=True, text=True, cwd=tflm)
        if proc.returncode:
            return {"error": proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else "compile failed"}
        nm = "arm-none-eabi-nm" if "arm-none-eabi" in cxx[0] else "nm"
        out = subprocess.run([nm, "-S", obj], capture_output=True, text=True, check=True).stdout
    return {p[3]: int(p[1], 16) for p in (line.split() for line in out.splitlines()) if len(p) == 4}


def declare(name: str, type_name: str) -> str:
    return (f'extern "C" {{ char size_{name}[sizeof({type_name})]; '
            f'char align_{name}[alignof({type_name})]; }}\n')


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("core", choices=sorted(CORE_FLAGS) + ["x86-64"])
    parser.add_argument("--tflm", default=os.path.join(os.environ.get("CORTEXM_ROOT", "/work/cortexm"),
                                                       "src", "tflite-micro"))
    args = parser.parse_args(argv)
    dl = os.path.join(args.tflm, "tensorflow/lite/micro/tools/make/downloads")
    includes = [f"-I{args.tflm}"] + [f"-I{os.path.join(dl, d)}" for d in (
        "flatbuffers/include", "gemmlowp", "ruy", "cmsis_nn", "cmsis_nn/Include", "cmsis/CMSIS/Core/Include")]
    base = ["-std=c++17", "-O0", "-fno-rtti", "-fno-exceptions", "-DTF_LITE_STATIC_MEMORY", "-DNDEBUG"]
    if args.core == "x86-64":
        cxx = ["g++"] + base + ["-DUSE_TFLM_COMPRESSION"] + includes
    else:
        cxx = ["arm-none-eabi-g++"] + CORE_FLAGS[args.core].split() + base + includes
    source = "".join(f'#include "{h}"\n' for h in COMMON) + "namespace tflite {\n"
    source += "".join(declare(k, v) for k, v in {**STRUCTS, **PARAMS}.items()) + "}\n"
    for name, value in sorted(compile_sizes(cxx, source, args.tflm).items()):
        print(f"struct {name} {value}")
    for kernels, table in OP_DATA.items():
        flags = ["-DCMSIS_NN"] if kernels == "cmsis_nn" else []
        for op, (file, type_name) in table.items():
            with open(os.path.join(args.tflm, "tensorflow/lite/micro/kernels", file)) as f:
                text = f.read()
            sizes = compile_sizes(cxx + flags, text + "\nnamespace tflite {\n" + declare("OpData", type_name) + "}\n",
                                  args.tflm)
            print(f"op_data {kernels} {op} {sizes.get('size_OpData', sizes.get('error'))} "
                  f"align {sizes.get('align_OpData', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
