def load_dataset_for(path):
    return path
