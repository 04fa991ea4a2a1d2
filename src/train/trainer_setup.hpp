// What a Trainer decides before it allocates anything: the initial values of parameters and buffers, where the
// optimizer runs (TrainerOptions::update_location) and whether the model fits the device's and the host's memory.
#pragma once

#include <cstdint>
#include <random>
#include <string>

#include "graph/resources.hpp"
#include "vktrain/trainer.hpp"

namespace vktrain::runtime {
class Device;
}

namespace vktrain::train {

// The initial value of one parameter or buffer (ParameterInfo::init) from `rng`: identical on every platform.
void init_values(float* out, const graph::ParamSlot& s, std::mt19937_64& rng);

// The gradient buckets the options ask for (TrainerOptions::update_buckets; 1: no pipeline,
// train/pipelined_update.hpp).
uint32_t update_buckets(const TrainerOptions& o, const graph::Layout& l);

struct Location {
    UpdateLocation where = UpdateLocation::host;
    std::string reason;
};
// Where the optimizer runs; throws vktrain::Error for a device update the options rule out.
Location choose_location(runtime::Device& device, const graph::Layout& l, const TrainerOptions& o);

// Refuses a model whose weights, gradients, staging, optimizer state (and `arena` bytes of activations) do not fit;
// returns the host bytes it counted.
uint64_t check_memory(const runtime::Device& device, const graph::Layout& l, const TrainerOptions& o,
                      UpdateLocation where, uint64_t arena);

} // namespace vktrain::train
