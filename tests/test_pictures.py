"""Pictures speak the data's language: class names in the prediction grid and on the confusion matrix,
a matrix sized for TensorBoard's image card, and image tags that sort after the learning curves."""

import torch

from src.runs import pictures, tags

FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def test_the_prediction_grid_titles_name_the_predicted_and_true_classes():
    labels = torch.arange(25) % 10
    predicted = labels.clone()
    predicted[4] = 2  # a Coat taken for a Pullover
    figure = pictures.prediction_grid(torch.zeros(25, 28, 28, dtype=torch.uint8), predicted, labels, FASHION)
    titles = {text.get_text(): text.get_color() for text in figure.axes[0].texts}
    assert titles["Pred: Pullover\nLabel: Coat"] == "red"
    assert titles["Pred: Ankle boot\nLabel: Ankle boot"] == "black"
    assert figure.texts[0].get_text() == "1 of 25 wrong (red)"


def test_the_confusion_matrix_names_its_axes_and_fits_a_tensorboard_card(tmp_path):
    counts = torch.eye(10, dtype=torch.long) * 900 + 10
    figure = pictures.confusion_figure(counts, FASHION)
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_xticklabels()] == list(FASHION)
    assert [label.get_text() for label in axis.get_yticklabels()] == list(FASHION)
    pixels = pictures.render(figure, tmp_path / "confusion.png")
    # TensorBoard's image cards are at least 335 pixels wide: drawn at about that width, the 7-8 point
    # counts and names are shown at their own size instead of shrunk.
    assert 300 <= pixels.shape[1] <= 400 and (tmp_path / "confusion.png").is_file()
    assert min(text.get_fontsize() for text in axis.texts) >= 7


def test_images_sort_after_every_scalar_group_in_tensorboards_time_series():
    # The time series dashboard groups cards by the tag's part before the first "/", in name order.
    scalar_groups = {tag.split("/")[0] for tag in (*tags.EPOCH_TAGS, tags.TRAIN_LOSS_STEP, tags.FINAL_SECONDS)}
    image_groups = {tag.split("/")[0] for tag in (tags.PREDICTIONS, tags.CONFUSION)}
    assert max(scalar_groups) == "val" and min(image_groups) > max(scalar_groups)
