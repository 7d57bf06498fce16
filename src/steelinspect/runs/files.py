"""The run directory's file names, defined once (training writes them; prediction, evaluation, tuning and the demo
read them).

RUN_DIR/
  config.json      TrainConfig, read back on resume
  splits.json      the image ids of train / val / test (what the training-data guard checks)
  model.pt         the best epoch's weights and decision parameters (runs/store.py)
  checkpoint.pt    the last epoch's full state, for --resume
  history.json     one record per epoch
  curves.png       loss and score per epoch
  metrics.json     final metrics per split, the tuned decision parameters, the gate re-tuning
  evaluation.json  `steelinspect evaluate`'s default output
  model.onnx       `steelinspect export`'s output
  model.int8.onnx  `steelinspect export --int8`'s output (ONNX Runtime static quantization, accuracy-guarded)
  bands.json       `steelinspect tune-bands`' OK / REVIEW / NG thresholds with their PR curves (runs/bands.py)
  bands.png        those PR curves with T1 / T2 marked
  pseudo.json      --pseudo: the teacher, the thresholds, every image kept (labels, confidence) or left out (why)
  adapt.json       `steelinspect adapt`'s output run: the run it came from, the unlabelled frames its BatchNorm
                   statistics were measured on (tuning/adapt.py)

A K-fold parent (`train ... --folds K`, train/folds.py; an ensemble, runs/ensemble.py):
PARENT/
  config.json      TrainConfig with folds=K (fold 0), read back on --resume
  fold_1 .. fold_K ordinary run directories, fold k validating on fold k
  splits.json      "train": every image some member trained on (the training-data guard), "test": held out
  oof.csv          classifiers: every non-test image's probabilities from the member that did not train on it
  oof.npz          segmenter: per image the Dice of every post-processing candidate (not the masks)
  ensemble.json    the members and the ensemble's decision parameters, tuned on the out-of-fold predictions
  metrics.json     out-of-fold and test metrics of the ensemble

An ensemble folder (`steelinspect ensemble RUN RUN ...`, tuning/ensemble.py) holds no runs of its own:
PARENT/
  ensemble.json    the members as paths relative to PARENT, and the thresholds tuned on their shared validation split
  config.json      the first member's TrainConfig
  splits.json      "train": every image some member trained on; "val", "test": the split the members share
  metrics.json     validation and test metrics of the ensemble, each member's test score beside
"""

CONFIG_FILE = "config.json"
SPLITS_FILE = "splits.json"
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
HISTORY_FILE = "history.json"
CURVES_FILE = "curves.png"
METRICS_FILE = "metrics.json"
EVALUATION_FILE = "evaluation.json"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
BANDS_FILE = "bands.json"
BANDS_FIGURE = "bands.png"
ENSEMBLE_FILE = "ensemble.json"
OOF_CSV = "oof.csv"
OOF_NPZ = "oof.npz"
FOLD_PREFIX = "fold_"
PSEUDO_FILE = "pseudo.json"
ADAPT_FILE = "adapt.json"
