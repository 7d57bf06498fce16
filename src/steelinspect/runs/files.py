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
  pseudo.json      --pseudo: the teacher, the thresholds, every image kept (labels, confidence) or left out (why)
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
PSEUDO_FILE = "pseudo.json"
