// Arena probe for a Cortex-M build of TFLite Micro (keras-cprune, issue 26).
//
//   probe.elf MODEL.tflite [INPUT.bin [OUTPUT.bin]] [--arena BYTES] [--step BYTES]
//
// Reads MODEL (and INPUT: the raw bytes of every input tensor, in input order) from the host by
// semihosting; finds the smallest arena size, in --step (16) byte steps, with which a fresh
// MicroInterpreter allocates and invokes the model; invokes once at that size and writes the bytes
// of every output tensor (in output order) to OUTPUT. With --arena it only runs at BYTES.
// Then, with a RecordingMicroInterpreter on a generous arena, it prints the allocation breakdown.
// Every result is a line "PROBE key=value ..." on stdout; the host (benchmarks/bench_cortexm.py)
// parses them. Only TFLM's public API is used.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#ifndef O_BINARY
#define O_BINARY 0
#endif

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/micro/recording_micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

constexpr size_t kArenaMax = 4 * 1024 * 1024;  // bytes; the largest arena tried
alignas(16) uint8_t g_arena[kArenaMax];

using Resolver = tflite::MicroMutableOpResolver<64>;

// Every builtin keras-cprune's converter emits, and a few more that Keras models lower to.
void RegisterOps(Resolver& r) {
  r.AddConv2D(); r.AddDepthwiseConv2D(); r.AddFullyConnected(); r.AddTransposeConv();
  r.AddAdd(); r.AddMul(); r.AddSub(); r.AddMean(); r.AddSum(); r.AddReduceMax();
  r.AddMaxPool2D(); r.AddAveragePool2D(); r.AddReshape(); r.AddSoftmax();
  r.AddQuantize(); r.AddDequantize(); r.AddConcatenation(); r.AddPad(); r.AddPadV2();
  r.AddShape(); r.AddStridedSlice(); r.AddPack(); r.AddUnpack(); r.AddExpandDims();
  r.AddSqueeze(); r.AddRelu(); r.AddRelu6(); r.AddLogistic(); r.AddTanh(); r.AddHardSwish();
  r.AddLeakyRelu(); r.AddPrelu(); r.AddMaximum(); r.AddMinimum(); r.AddTranspose();
  r.AddResizeNearestNeighbor(); r.AddResizeBilinear(); r.AddSplit(); r.AddSplitV();
  r.AddGather(); r.AddSlice(); r.AddBatchToSpaceNd(); r.AddSpaceToBatchNd();
  r.AddSquaredDifference(); r.AddRsqrt(); r.AddDiv(); r.AddFill(); r.AddZerosLike();
  r.AddUnidirectionalSequenceLSTM();
}

// Files through newlib's semihosting syscalls (open/read/write) into static buffers: no heap,
// which the M55 board's semihosting start-up leaves unusable.
constexpr size_t kModelMax = 4 * 1024 * 1024;  // bytes
constexpr size_t kInputMax = 1024 * 1024;      // bytes
alignas(16) uint8_t g_model[kModelMax];
alignas(16) uint8_t g_input[kInputMax];

bool ReadFile(const char* path, uint8_t* buf, size_t cap, size_t* size) {
  int fd = open(path, O_RDONLY | O_BINARY);
  if (fd < 0) return false;
  size_t n = 0;
  while (n < cap) {
    int got = read(fd, buf + n, cap - n);
    if (got <= 0) break;
    n += static_cast<size_t>(got);
  }
  close(fd);
  *size = n;
  return n > 0 && n < cap;
}

struct Run {
  bool allocated = false;
  bool invoked = false;
  size_t used = 0;  // arena_used_bytes()
};

// One fresh interpreter on `arena` bytes: AllocateTensors, then (optionally with `input`) Invoke,
// then (optionally) write the outputs.
Run TryArena(const tflite::Model* model, const Resolver& r, size_t arena, const uint8_t* input,
             size_t input_size, const char* out_path) {
  Run run;
  tflite::MicroInterpreter interp(model, r, g_arena, arena);
  if (interp.AllocateTensors() != kTfLiteOk) return run;
  run.allocated = true;
  run.used = interp.arena_used_bytes();
  size_t off = 0;
  for (size_t i = 0; i < interp.inputs_size(); ++i) {
    TfLiteTensor* t = interp.input(i);
    if (input != nullptr && off + t->bytes <= input_size) {
      memcpy(t->data.raw, input + off, t->bytes);
    } else {
      for (size_t k = 0; k < t->bytes; ++k) t->data.raw[k] = static_cast<char>((k * 7) & 0xff);
    }
    off += t->bytes;
  }
  if (interp.Invoke() != kTfLiteOk) return run;
  run.invoked = true;
  if (out_path != nullptr) {
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_BINARY, 0644);
    for (size_t i = 0; fd >= 0 && i < interp.outputs_size(); ++i) {
      TfLiteTensor* t = interp.output(i);
      if (write(fd, t->data.raw, t->bytes) != static_cast<int>(t->bytes)) printf("PROBE error=short write\n");
      printf("PROBE output index=%u type=%d bytes=%u\n", static_cast<unsigned>(i),
             static_cast<int>(t->type), static_cast<unsigned>(t->bytes));
    }
    if (fd >= 0) close(fd); else printf("PROBE error=cannot write '%s'\n", out_path);
  }
  return run;
}

bool Fits(const tflite::Model* model, const Resolver& r, size_t arena, const uint8_t* input,
          size_t input_size) {
  Run run = TryArena(model, r, arena, input, input_size, nullptr);
  return run.allocated && run.invoked;
}

void PrintBreakdown(const tflite::Model* model, const Resolver& r, size_t arena) {
  tflite::RecordingMicroInterpreter interp(model, r, g_arena, arena);
  if (interp.AllocateTensors() != kTfLiteOk) {
    printf("PROBE breakdown_failed arena=%u\n", static_cast<unsigned>(arena));
    return;
  }
  const tflite::RecordingMicroAllocator& a = interp.GetMicroAllocator();
  const auto* mem = a.GetSimpleMemoryAllocator();
  printf("PROBE recording used=%u head=%u tail=%u recording_overhead=%u\n",
         static_cast<unsigned>(interp.arena_used_bytes()),
         static_cast<unsigned>(mem->GetNonPersistentUsedBytes()),
         static_cast<unsigned>(mem->GetPersistentUsedBytes()),
         static_cast<unsigned>(tflite::RecordingMicroAllocator::GetDefaultTailUsage()));
  static const char* kNames[] = {"eval_tensor_data", "persistent_tflite_tensor_data",
                                 "persistent_tflite_tensor_quantization_data",
                                 "persistent_buffer_data", "tflite_tensor_variable_buffer_data",
                                 "node_and_registration_array", "op_data"};
  for (int i = 0; i < 7; ++i) {
    auto rec = a.GetRecordedAllocation(static_cast<tflite::RecordedAllocationType>(i));
    printf("PROBE alloc name=%s requested=%u used=%u count=%u\n", kNames[i],
           static_cast<unsigned>(rec.requested_bytes), static_cast<unsigned>(rec.used_bytes),
           static_cast<unsigned>(rec.count));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const char* paths[3] = {nullptr, nullptr, nullptr};
  int npaths = 0;
  size_t fixed = 0, step = 16, invokes = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--arena") == 0 && i + 1 < argc) fixed = strtoul(argv[++i], nullptr, 10);
    else if (strcmp(argv[i], "--invokes") == 0 && i + 1 < argc) invokes = strtoul(argv[++i], nullptr, 10);
    else if (strcmp(argv[i], "--step") == 0 && i + 1 < argc) step = strtoul(argv[++i], nullptr, 10);
    else if (npaths < 3) paths[npaths++] = argv[i];
  }
  if (npaths == 0) {
    printf("PROBE error=usage: probe.elf MODEL.tflite [INPUT.bin [OUTPUT.bin]] [--arena N] [--invokes N]\n");
    return 2;
  }
  size_t model_size = 0, input_size = 0;
  uint8_t* model_buf = g_model;
  if (!ReadFile(paths[0], g_model, kModelMax, &model_size)) {
    printf("PROBE error=cannot read model '%s'\n", paths[0]);
    return 2;
  }
  uint8_t* input = paths[1] != nullptr ? g_input : nullptr;
  if (paths[1] != nullptr && !ReadFile(paths[1], g_input, kInputMax, &input_size)) {
    printf("PROBE error=cannot read input '%s'\n", paths[1]);
    return 2;
  }
  const tflite::Model* model = tflite::GetModel(model_buf);
  printf("PROBE model_bytes=%u schema=%u\n", static_cast<unsigned>(model_size),
         static_cast<unsigned>(model->version()));
  static Resolver resolver;
  RegisterOps(resolver);

  if (invokes > 0) {  // for instruction counts: one interpreter, `invokes` Invoke()s, nothing else
    tflite::MicroInterpreter interp(model, resolver, g_arena, kArenaMax);
    if (interp.AllocateTensors() != kTfLiteOk) return 1;
    for (size_t i = 0; i < interp.inputs_size(); ++i) memset(interp.input(i)->data.raw, 0, interp.input(i)->bytes);
    for (size_t k = 0; k < invokes; ++k)
      if (interp.Invoke() != kTfLiteOk) return 1;
    printf("PROBE invokes=%u\n", static_cast<unsigned>(invokes));
    return 0;
  }
  size_t arena = fixed;
  if (arena == 0) {
    // A generous arena gives arena_used_bytes() U; the smallest arena lies near U (TFLM's own
    // note: arena_used_bytes() + 16). Find a size that fits, then bisect down in `step` bytes.
    Run big = TryArena(model, resolver, kArenaMax, input, input_size, nullptr);
    if (!big.allocated || !big.invoked) {
      printf("PROBE error=fails even with %u bytes (allocated=%d invoked=%d)\n",
             static_cast<unsigned>(kArenaMax), big.allocated, big.invoked);
      return 1;
    }
    size_t hi = (big.used + 2 * step + step - 1) / step * step;
    int probes = 1;
    while (!Fits(model, resolver, hi, input, input_size)) { hi += hi / 8 / step * step + step; ++probes; }
    size_t lo = 0;  // lo fails (or is 0), hi fits
    size_t guess = big.used / step * step;
    if (guess < hi) {
      ++probes;
      if (Fits(model, resolver, guess, input, input_size)) hi = guess; else lo = guess;
    }
    if (lo == 0 && hi > step) {  // gallop down from hi
      size_t d = step;
      while (true) {
        size_t t = hi > d ? hi - d : 0;
        if (t == 0) break;
        ++probes;
        if (Fits(model, resolver, t, input, input_size)) { hi = t; d *= 2; } else { lo = t; break; }
      }
    }
    while (hi - lo > step) {
      size_t mid = (lo + (hi - lo) / 2) / step * step;
      if (mid <= lo) mid = lo + step;
      ++probes;
      if (Fits(model, resolver, mid, input, input_size)) hi = mid; else lo = mid;
    }
    arena = hi;
    printf("PROBE search generous_used=%u probes=%d\n", static_cast<unsigned>(big.used), probes);
  }
  Run run = TryArena(model, resolver, arena, input, input_size, npaths >= 3 ? paths[2] : nullptr);
  printf("PROBE arena=%u allocated=%d invoked=%d arena_used_bytes=%u\n",
         static_cast<unsigned>(arena), run.allocated, run.invoked, static_cast<unsigned>(run.used));
  PrintBreakdown(model, resolver, kArenaMax);
  printf("PROBE done\n");
  return run.invoked ? 0 : 1;
}
