// Flags shared by several subcommands.
#pragma once
#include <CLI/CLI.hpp>

#include "fstm/lib/model_loader.h"

namespace fstm::cli {

// --model, or --arch/--num-classes/--weights, plus --size/--mean/--std/--device.
inline void add_model_options(CLI::App& app, ModelSpec& spec) {
  app.add_option("--model", spec.model, "fstm checkpoint (.safetensors with arch, classes and preprocessing)");
  app.add_option("--arch", spec.arch, "Architecture, with --weights")->capture_default_str();
  app.add_option("--num-classes", spec.num_classes, "Classes of the head, with --weights")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--weights", spec.weights, "State dict (.safetensors) with torchvision names");
  app.add_option("--size", spec.size, "Input side in pixels (images of another size are resized)")
      ->check(CLI::Range(16, 4096));
  app.add_option("--mean", spec.mean, "Normalisation mean r,g,b (default ImageNet's)");
  app.add_option("--std", spec.std, "Normalisation std r,g,b (default ImageNet's)");
  app.add_option("--device", spec.device, "cpu or cuda[:N]")->capture_default_str();
}

}  // namespace fstm::cli
