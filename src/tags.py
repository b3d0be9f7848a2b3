"""TensorBoard tags and metrics.json keys, defined once for the loop, the runner and the tests."""

TRAIN_LOSS_STEP = "train/loss_step"  # x axis: optimizer step
# The rest are per epoch (x axis: epoch; epoch 0 is the evaluation before training).
TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"
LR = "lr"
EPOCH_SECONDS = "epoch_seconds"
SAMPLES_PER_SECOND = "samples_per_second"
EPOCH_TAGS = (TRAIN_LOSS, TRAIN_ACC, VAL_LOSS, VAL_ACC, TEST_LOSS, TEST_ACC, LR, EPOCH_SECONDS, SAMPLES_PER_SECOND)
CONFIG_TEXT = "config"
PARAMETERS_TEXT = "parameters"

# metrics.json: the final figures of a run.
METRIC_KEYS = (
    "test_acc", "test_loss", "val_acc", "train_acc", "train_loss", "best_val_acc",
    "epochs_completed", "num_params", "seconds", "device", "status",
)
