"""TensorBoard tags and metrics.json keys, defined once for the loop, the runner and the tests."""

# Every scalar is logged against the optimizer step. TRAIN_LOSS_STEP at every logged step; the rest
# once per epoch, at the epoch's last step (step 0: the evaluation before training).
TRAIN_LOSS_STEP = "train/loss_step"
EPOCH = "epoch"
TRAIN_LOSS = "train/loss"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
TEST_LOSS = "test/loss"
TEST_ACC = "test/acc"
LR = "lr"
EPOCH_SECONDS = "epoch_seconds"
SAMPLES_PER_SECOND = "samples_per_second"
EPOCH_TAGS = (
    EPOCH,
    TRAIN_LOSS,
    TRAIN_ACC,
    VAL_LOSS,
    VAL_ACC,
    TEST_LOSS,
    TEST_ACC,
    LR,
    EPOCH_SECONDS,
    SAMPLES_PER_SECOND,
)
# Logged once at the end of a run, for the HPARAMS dashboard.
FINAL_BEST_VAL_ACC = "final/best_val_acc"
FINAL_SECONDS = "final/seconds"
FINAL_PRUNED = "final/pruned"  # 1 for a study's trial its pruner stopped, else 0
# Images, drawn once at the end. TensorBoard's time series orders its groups by tag name (the part
# before the first "/"): "visuals" sorts after every scalar group (epoch ... train, val), so the first
# screen shows the learning curves and the pictures follow them.
PREDICTIONS = "visuals/predictions"  # a 5x5 grid of test images with predicted and true class names
CONFUSION = "visuals/confusion"  # the test confusion matrix
CONFIG_TEXT = "config"
PARAMETERS_TEXT = "parameters"

# metrics.json: the final figures of a run.
METRIC_KEYS = (
    "test_acc",
    "test_loss",
    "val_acc",
    "val_loss",
    "train_acc",
    "train_loss",
    "best_val_acc",
    "epochs_completed",
    "num_params",
    "seconds",
    "train_seconds",
    "job_seconds",
    "device",
    "status",
    "diverged_at",
    "pruned_at",
    "stopped_early",
    "view",
    "permutation_seed",
)
