#include "autograd/trace.h"

namespace fstm {

namespace {
thread_local Tracer* g_tracer = nullptr;
}

Tracer* active_tracer() { return g_tracer; }
TraceGuard::TraceGuard(Tracer& tracer) : previous_(g_tracer) { g_tracer = &tracer; }
TraceGuard::~TraceGuard() { g_tracer = previous_; }

const char* traced_kind_name(TracedKind k) {
  switch (k) {
    case TracedKind::Conv2d: return "conv2d";
    case TracedKind::BatchNormEval: return "batch_norm";
    case TracedKind::Linear: return "linear";
    case TracedKind::MaxPool2d: return "max_pool2d";
    case TracedKind::GlobalAvgPool: return "global_avg_pool";
    case TracedKind::Activation: return "activation";
    case TracedKind::Add: return "add";
    case TracedKind::Sub: return "sub";
    case TracedKind::Mul: return "mul";
    case TracedKind::Affine: return "affine";
    case TracedKind::MulChannel: return "mul_channel";
    case TracedKind::Concat: return "concat";
    case TracedKind::Reshape: return "reshape";
  }
  return "?";
}

}  // namespace fstm
