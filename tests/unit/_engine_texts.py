"""Item texts and a clock shared by the engine tests: eight topics a tiny model can tell apart."""

T0 = 1_700_000_000.0
TEXTS = [
    "acoustic folk ballad with banjo",
    "gravel cycling climb of the tour",
    "pasta sauce recipe from a chef",
    "neural network training on a gpu",
    "telescope view of a distant galaxy",
    "football derby penalty drama",
    "compost and tomatoes in the garden",
    "bebop saxophone jazz quartet",
]
