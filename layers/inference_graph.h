// Tracing a model into the inference graph (kernels/graph/inference_graph.h): the only part of the
// inference path that needs autograd (the tracer records the eval-mode forward's ops) and so the
// only part that lives in layers/.
//
//   trace (autograd/trace.h)  ->  build_inference_graph()  ->  an executor (kernels/graph/executor.h)
#pragma once
#include "autograd/trace.h"
#include "kernels/graph/inference_graph.h"

namespace fstm {

// Builds the graph of `tracer`'s ops between `input` and `output`, re-batched to `batch`, and
// applies the rewrites (fuse_inference_graph; with fuse = false only BatchNorm is lowered). Throws
// fstm::Error when the trace holds something a plan cannot express (training-mode layers, ops on
// tensors that come from nowhere).
InferenceGraph build_inference_graph(const Tracer& tracer, const Tensor& input, const Tensor& output, int64_t batch,
                                     bool fuse = true);

}  // namespace fstm
