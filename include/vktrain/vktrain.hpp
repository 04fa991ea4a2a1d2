// vktrain: mixed-precision training on any Vulkan device. The one header an application includes.
#pragma once

#include "vktrain/context.hpp"
#include "vktrain/data.hpp"
#include "vktrain/error.hpp"
#include "vktrain/images.hpp"
#include "vktrain/import.hpp"
#include "vktrain/lora.hpp"
#include "vktrain/model.hpp"
#include "vktrain/options.hpp"
#include "vktrain/text.hpp"
#include "vktrain/tokenizer.hpp"
#include "vktrain/trainer.hpp"
#include "vktrain/weights.hpp"
