"""Facts about the Severstal format, defined once for the whole project."""

IMAGE_HEIGHT = 256
IMAGE_WIDTH = 1600
IMAGE_SHAPE = (IMAGE_HEIGHT, IMAGE_WIDTH)
CLASS_IDS = (1, 2, 3, 4)
NUM_CLASSES = len(CLASS_IDS)

# Mask overlay colours (RGB), the capstone's convention: 1 blue, 2 purple, 3 yellow, 4 red.
CLASS_COLOURS = {
    1: (30, 110, 255),
    2: (170, 60, 220),
    3: (250, 210, 20),
    4: (235, 35, 35),
}

LABELS_FILE = "train.csv"
IMAGES_DIR = "train_images"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

# The largest image (width x height, read from the header before decoding) any command decodes: 4 Severstal
# frames. A 333-byte JPEG may declare 32000x32000 pixels; decoding it would take gigabytes.
MAX_PIXELS = 4 * IMAGE_WIDTH * IMAGE_HEIGHT
# Overrides MAX_PIXELS for every command (`steelinspect --max-pixels N` sets it); read at each decode, so
# worker processes and threads see it too.
MAX_PIXELS_ENV = "STEELINSPECT_MAX_PIXELS"

# Below this many validation images of a class, an F1-optimal threshold follows one or two images' scores; under
# `--rare-threshold break-even` step 2's breaks even instead (metrics/classification.py class_threshold;
# data/splits.py warns).
FEW_POSITIVES = 5
