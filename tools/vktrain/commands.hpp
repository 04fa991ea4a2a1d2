// The vktrain subcommands. Each takes the arguments after its name and returns the exit status; usage errors throw
// UsageError (status 2) and runtime failures vktrain::Error or another std::exception (status 1), which main()
// reports as one "vktrain: error: ..." line.
#pragma once

#include <string>
#include <vector>

#include "vktrain/trainer.hpp"

namespace vktrain::cli {

int run_train(const std::vector<std::string>& args);
struct TrainArgs;
struct ModelSpec;
TrainerOptions trainer_options(const TrainArgs& args);      // the options every `train` run shares
int run_train_text(TrainArgs& args, const ModelSpec& spec); // run_train's path for --model gpt:...
int run_train_images(TrainArgs& args);                      // run_train's path for --images DIR
struct EvalArgs;
int run_eval_text(const EvalArgs& args); // run_eval's path for weights with a vocabulary
int run_eval(const std::vector<std::string>& args);
int run_devices(const std::vector<std::string>& args);
int run_generate(const std::vector<std::string>& args);
int run_ops(const std::vector<std::string>& args);
int run_import(const std::vector<std::string>& args);
int run_export(const std::vector<std::string>& args);
int run_predict(const std::vector<std::string>& args);
int run_tokenize(const std::vector<std::string>& args);

// Help texts (each ends with a newline).
const char* main_usage();
const char* train_usage();
const char* eval_usage();
const char* devices_usage();
const char* generate_usage();
const char* ops_usage();
const char* import_usage();
const char* export_usage();
const char* predict_usage();
const char* tokenize_usage();

} // namespace vktrain::cli
