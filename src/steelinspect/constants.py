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
