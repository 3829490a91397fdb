// Learning-rate schedule, AdamW bias-correction inputs, and the checks on an
// artifact's optimizer settings.

#include <cmath>

#include "gtest/gtest.h"
#include "runtime/train/Schedule.h"

namespace veomni::runtime {
namespace {

struct Settings {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1,
         max_grad_norm = 1.0, min_lr = 0;
  const char* schedule = "constant";
  int64_t warmup = 0, total = 0;
};

// Owns the FlatBuffer that the returned Optimizer points into.
class OptimizerBuffer {
 public:
  explicit OptimizerBuffer(const Settings& s) {
    builder_.Finish(artifact::CreateOptimizerDirect(
        builder_, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay, s.max_grad_norm, s.schedule,
        s.warmup, s.total, s.min_lr));
  }
  const artifact::Optimizer* get() const {
    return flatbuffers::GetRoot<artifact::Optimizer>(builder_.GetBufferPointer());
  }

 private:
  flatbuffers::FlatBufferBuilder builder_;
};

TEST(Schedule, CosineWarmsUpLinearlyThenDecaysToMinLr) {
  Settings s;
  s.schedule = "cosine";
  s.warmup = 4;
  s.total = 12;
  s.min_lr = 1e-4;
  OptimizerBuffer buffer(s);
  // HF's scheduler at step - 1: 0 at the first step, peak after warmup.
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 1), 0.0);
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 3), s.lr * 2 / 4);
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 5), s.lr);
  double half = s.min_lr + (s.lr - s.min_lr) * 0.5 * (1 + std::cos(M_PI * 0.5));
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 9), half);
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 13), s.min_lr);
  EXPECT_DOUBLE_EQ(LearningRate(*buffer.get(), 100), s.min_lr);
}

TEST(Schedule, AdamwHyperTakesLrFromTheStepAndBiasFromTheUpdate) {
  Settings s;
  OptimizerBuffer buffer(s);
  std::array<float, 3> hyper = AdamwHyper(*buffer.get(), /*step=*/5, /*update=*/2);
  EXPECT_FLOAT_EQ(hyper[0], static_cast<float>(s.lr));
  EXPECT_FLOAT_EQ(hyper[1], static_cast<float>(1 - s.beta1 * s.beta1));
  EXPECT_FLOAT_EQ(hyper[2], static_cast<float>(1 - s.beta2 * s.beta2));
}

TEST(Schedule, ValidateOptimizerAcceptsWhatTheCompilerWrites) {
  Settings constant;
  EXPECT_TRUE(ValidateOptimizer(OptimizerBuffer(constant).get()).ok());
  Settings cosine;
  cosine.schedule = "cosine";
  cosine.warmup = 2;
  cosine.total = 10;
  EXPECT_TRUE(ValidateOptimizer(OptimizerBuffer(cosine).get()).ok());
}

TEST(Schedule, ValidateOptimizerRejectsOutOfRangeSettings) {
  EXPECT_FALSE(ValidateOptimizer(nullptr).ok());
  auto rejects = [](auto edit) {
    Settings s;
    edit(s);
    return !ValidateOptimizer(OptimizerBuffer(s).get()).ok();
  };
  EXPECT_TRUE(rejects([](Settings& s) { s.lr = 0; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.lr = NAN; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.beta1 = 1; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.beta2 = -0.1; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.eps = 0; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.weight_decay = -1; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.max_grad_norm = INFINITY; }));
  EXPECT_TRUE(rejects([](Settings& s) { s.schedule = "linear"; }));
  EXPECT_TRUE(rejects([](Settings& s) {
    s.schedule = "cosine";
    s.warmup = 10;
    s.total = 10;
  }));
}

}  // namespace
}  // namespace veomni::runtime
