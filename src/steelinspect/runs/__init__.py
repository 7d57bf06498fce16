"""The run directory: its file names, TrainConfig, model.pt / checkpoint.pt read and write, load_run."""
